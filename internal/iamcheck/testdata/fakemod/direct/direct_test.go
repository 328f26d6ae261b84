package direct

import "github.com/aws/aws-sdk-go-v2/service/ssm"

// A test file: not scanned, so ssm:CreateOpsItem is not found.
var _ = ssm.CreateOpsItemInput{}
