// Package other stands for a package outside the module: the test leaves it out of the
// package list, so s3:PutObject is not found.
package other

import "github.com/aws/aws-sdk-go-v2/service/s3"

var _ = s3.PutObjectInput{}
