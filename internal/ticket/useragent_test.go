package ticket

import (
	"strings"
	"testing"
)

func TestAdviseUserAgent(t *testing.T) {
	const speaks = "this version speaks IMDSv2: the caller may force IMDSv1"
	tests := []struct {
		ua                  string
		sdk, version, min   string
		outdated, recognise bool
		advice              string // prefix of the advice
	}{
		{"aws-cli/1.16.287 Python/3.6.9 Linux/4.14.138 botocore/1.13.23",
			"AWS CLI v1", "1.16.287", "1.16.289", true, true, "upgrade AWS CLI v1 from 1.16.287 to at least 1.16.289"},
		{"aws-cli/1.16.289 Python/3.6.9 Linux/4.14.146 botocore/1.13.25",
			"AWS CLI v1", "1.16.289", "1.16.289", false, true, speaks},
		{"aws-cli/2.13.5 Python/3.11.4 Linux/5.10.184-175.731.amzn2.x86_64 exe/x86_64.amzn.2 prompt/off command/s3.ls",
			"AWS CLI v2", "2.13.5", anyVersion, false, true, speaks},
		{"aws-cli/2.0.0 Python/3.7.3 Linux/4.14.154-128.181.amzn2.x86_64 botocore/2.0.0dev4",
			"AWS CLI v2", "2.0.0", anyVersion, false, true, speaks},
		{"Boto3/1.9.42 Python/2.7.15 Linux/4.14 Botocore/1.12.42",
			"AWS SDK for Python (botocore)", "1.12.42", "1.13.25", true, true,
			"upgrade AWS SDK for Python (botocore) from 1.12.42 to at least 1.13.25 (boto3 1.12.6 or later"},
		{"Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#5.10.205 md/arch#x86_64 lang/python#3.11.6 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.0",
			"AWS SDK for Python (botocore)", "1.34.0", "1.13.25", false, true, speaks},
		{"Boto3/1.10.0 Python/3.7.4 Linux/4.14",
			"AWS SDK for Python (Boto3)", "1.10.0", "1.12.6", true, true, "upgrade AWS SDK for Python (Boto3) from 1.10.0 to at least 1.12.6"},
		{"aws-sdk-java/1.11.500 Linux/4.14 OpenJDK_64-Bit_Server_VM/25.252",
			"AWS SDK for Java 1.x", "1.11.500", "1.11.678", true, true, "upgrade AWS SDK for Java 1.x from 1.11.500 to at least 1.11.678"},
		{"[aws-sdk-java/1.12.261 Linux/5.4.209-116.367.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/11.0.16+8-LTS java/11.0.16 vendor/Amazon.com_Inc. cfg/retry-mode/standard]",
			"AWS SDK for Java 1.x", "1.12.261", "1.11.678", false, true, speaks},
		{"aws-sdk-java/2.20.43 Linux/5.10.178 OpenJDK_64-Bit_Server_VM/17.0.7+7-LTS Java/17.0.7 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy",
			"AWS SDK for Java 2.x", "2.20.43", "2.10.21", false, true, speaks},
		{"aws-sdk-java/2.10.0 Linux/4.14 OpenJDK_64-Bit_Server_VM/11.0.5+10 Java/11.0.5 vendor/Amazon.com_Inc. io/sync http/Apache",
			"AWS SDK for Java 2.x", "2.10.0", "2.10.21", true, true, "upgrade AWS SDK for Java 2.x from 2.10.0 to at least 2.10.21"},
		{"aws-sdk-go/1.15.0 (go1.10; linux; amd64)",
			"AWS SDK for Go v1", "1.15.0", "1.25.38", true, true, "upgrade AWS SDK for Go v1 from 1.15.0 to at least 1.25.38"},
		{"aws-sdk-go-v2/1.2.0 os/linux lang/go#1.16",
			"AWS SDK for Go v2", "1.2.0", "0.19.0", false, true, speaks},
		{"aws-sdk-nodejs/2.500.0 linux/v10.16.0",
			"AWS SDK for JavaScript v2", "2.500.0", "2.722.0", true, true, "upgrade AWS SDK for JavaScript v2 from 2.500.0 to at least 2.722.0"},
		{"aws-sdk-nodejs/2.1400.0 linux/v18.16.0 callback",
			"AWS SDK for JavaScript v2", "2.1400.0", "2.722.0", false, true, speaks},
		{"aws-sdk-js/3.0.0 os/linux",
			"AWS SDK for JavaScript v3", "3.0.0", anyVersion, false, true, speaks},
		{"aws-sdk-dotnet-coreclr/3.3.110.26 aws-sdk-dotnet-core/3.3.104.14 .NET_Core/4.6.28325.01 OS/Microsoft_Windows_10.0.17763 ClientAsync",
			"AWS SDK for .NET (AWSSDK.Core)", "3.3.104.14", "3.3.103.66", false, true, speaks},
		{"aws-sdk-dotnet-45/3.3.100.1 aws-sdk-dotnet-core/3.3.29.0 .NET_Runtime/4.0 .NET_Framework/4.0 OS/Microsoft_Windows_NT_6.2.9200.0 ClientSync",
			"AWS SDK for .NET (AWSSDK.Core)", "3.3.29.0", "3.3.103.66", true, true, "upgrade AWS SDK for .NET (AWSSDK.Core) from 3.3.29.0 to at least 3.3.103.66"},
		{"aws-sdk-dotnet-45/3.3.100.1 ClientSync",
			"AWS SDK for .NET", "", "3.3.103.66", false, true, "could not read the version of AWS SDK for .NET; make sure it is at least 3.3.103.66"},
		{"AWSPowerShell/3.3.590.0 .NET_Runtime/4.0 .NET_Framework/4.0 OS/Microsoft_Windows_NT_10.0.14393.0 WindowsPowerShell/5.1 ClientSync",
			"AWS Tools for PowerShell", "3.3.590.0", "4.0.1.0", true, true, "upgrade AWS Tools for PowerShell from 3.3.590.0 to at least 4.0.1.0"},
		{"aws-sdk-ruby3/3.78.0 ruby/2.6.3 x86_64-linux aws-sdk-s3/1.48.0",
			"AWS SDK for Ruby v3 (aws-sdk-core)", "3.78.0", "3.79.0", true, true, "upgrade AWS SDK for Ruby v3 (aws-sdk-core) from 3.78.0 to at least 3.79.0"},
		{"aws-sdk-ruby2/2.11.9 ruby/2.5.1 x86_64-linux",
			"AWS SDK for Ruby v2", "2.11.9", "2.11.401", true, true, "upgrade AWS SDK for Ruby v2 from 2.11.9 to at least 2.11.401"},
		{"aws-sdk-php/3.100.0 GuzzleHttp/6.3.3 curl/7.61.1 PHP/7.2.19",
			"AWS SDK for PHP", "3.100.0", "3.147.7", true, true, "upgrade AWS SDK for PHP from 3.100.0 to at least 3.147.7"},
		{"aws-sdk-cpp/1.8.100 Linux/5.4.0-1045-aws x86_64 GCC/9.3.0",
			"AWS SDK for C++", "1.8.100", "1.7.229", false, true, speaks},
		{"aws-sdk-cpp/1.7.100 Linux/4.15 x86_64 GCC/7.4.0",
			"AWS SDK for C++", "1.7.100", "1.7.229", true, true, "upgrade AWS SDK for C++ from 1.7.100 to at least 1.7.229"},
		{"aws-sdk-rust/0.56.1 os/linux lang/rust/1.72.0",
			"AWS SDK for Rust", "0.56.1", anyVersion, false, true, speaks},
		{"aws-sdk-kotlin/1.0.41 ua/2.0 api/s3#1.0.41 os/linux#5.10 lang/kotlin#1.9.20 md/javaVersion#17.0.9",
			"AWS SDK for Kotlin", "1.0.41", "1.1.4", true, true, "upgrade AWS SDK for Kotlin from 1.0.41 to at least 1.1.4"},
		{"aws-sdk-go/1.44.298 (go1.20.5; linux; amd64) amazon-ssm-agent/3.2.1297.0",
			"Amazon SSM Agent", "3.2.1297.0", "3.0.431.0", false, true, speaks},
		{"aws-sdk-go/1.25.10 (go1.12.9; linux; amd64) amazon-ssm-agent/2.3.714.0",
			"Amazon SSM Agent", "2.3.714.0", "3.0.431.0", true, true,
			"upgrade Amazon SSM Agent from 2.3.714.0 to at least 3.0.431.0 (2.3.814.0 and later speak IMDSv2 but try IMDSv1 first)"},
		{"aws-sdk-go/1.25.19 (go1.12.12; linux; amd64) Amazon ECS Agent - v1.35.0 (b0a0d3f2)",
			"AWS SDK for Go v1 (inside Amazon ECS container agent 1.35.0)", "1.25.19", "1.25.38", true, true,
			"upgrade AWS SDK for Go v1 (inside Amazon ECS container agent 1.35.0) from 1.25.19 to at least 1.25.38"},
		{"CWAgent/1.247360.0 (go1.20.5; linux; amd64)",
			"Amazon CloudWatch agent", "1.247360.0", "", false, true, "no documented minimum version for IMDSv2 in Amazon CloudWatch agent"},
		{"aws-sdk-ruby3/3.130.2 ruby/2.7.8 x86_64-linux codedeploy-agent/1.1.0",
			"AWS CodeDeploy agent", "1.1.0", "1.2.1", true, true, "upgrade AWS CodeDeploy agent from 1.1.0 to at least 1.2.1"},
		{"amazon-vpc-cni-k8s/1.10.0 os/linux",
			"Amazon VPC CNI (aws-node)", "1.10.0", "1.10.1", true, true, "upgrade Amazon VPC CNI (aws-node) from 1.10.0 to at least 1.10.1 (1.10.0: its entrypoint"},
		{"kubelet/v1.17.12-eks-7684af (linux/amd64) kubernetes/7684af4",
			"kubelet", "v1.17.12-eks-7684af", "1.18.0", true, true, "upgrade kubelet from v1.17.12-eks-7684af to at least 1.18.0"},
		{"APN/1.0 HashiCorp/1.0 Terraform/1.5.7 (+https://www.terraform.io) terraform-provider-aws/5.17.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.21.0 os/linux lang/go#1.20.8 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.118.0 aws-sdk-go/1.45.12 (go1.20.8; linux; amd64)",
			"AWS SDK for Go v2", "1.21.0", "0.19.0", false, true, speaks},
		{"curl/7.79.1", "", "", "", false, false, "unrecognised"},
		{"python-requests/2.31.0", "", "", "", false, false, "unrecognised"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)", "", "", "", false, false, "unrecognised"},
		{"", "", "", "", false, false, "unrecognised"},
		{"aws-cli/latest Python/3.9", "", "", "", false, false, "unrecognised"},
	}
	for _, tt := range tests {
		t.Run(tt.ua, func(t *testing.T) {
			got := AdviseUserAgent(tt.ua)
			if got.UserAgent != tt.ua {
				t.Errorf("UserAgent = %q", got.UserAgent)
			}
			if !tt.recognise {
				if got.Recognised || got.Outdated || got.SDK != "" {
					t.Errorf("got %+v, want unrecognised", got)
				}
			} else if got.SDK != tt.sdk || got.Version != tt.version || got.MinVersion != tt.min ||
				got.Outdated != tt.outdated || !got.Recognised {
				t.Errorf("got SDK %q version %q min %q outdated %v recognised %v\nwant SDK %q version %q min %q outdated %v",
					got.SDK, got.Version, got.MinVersion, got.Outdated, got.Recognised, tt.sdk, tt.version, tt.min, tt.outdated)
			}
			if !strings.HasPrefix(got.Advice, tt.advice) {
				t.Errorf("advice %q\ndoes not start with %q", got.Advice, tt.advice)
			}
		})
	}
}

func TestAdviseUserAgentSpeaksV2Wording(t *testing.T) {
	got := AdviseUserAgent("aws-sdk-go-v2/1.2.0 os/linux lang/go#1.16").Advice
	for _, want := range []string{"this version speaks IMDSv2", "AWS_EC2_METADATA_V1_DISABLED", "custom metadata client"} {
		if !strings.Contains(got, want) {
			t.Errorf("advice %q lacks %q", got, want)
		}
	}
}

func TestParseAndCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.16.287", "1.16.289", -1},
		{"1.16.289", "1.16.289", 0},
		{"1.16.290", "1.16.289", 1},
		{"1.2", "1.2.0", 0},
		{"1.10", "1.9.99", 1},
		{"v1.18.9-eks-1", "1.18.0", 1},
		{"2.0.0dev4", "2.0.0", 0},
		{"3.3.104.14", "3.3.103.66", 1},
		{"1.8.0_252", "1.8.0", 0},
	}
	for _, tt := range tests {
		a, okA := parseVersion(tt.a)
		b, okB := parseVersion(tt.b)
		if !okA || !okB {
			t.Fatalf("parseVersion(%q, %q) failed", tt.a, tt.b)
		}
		if got := compareVersions(a, b); got != tt.want {
			t.Errorf("compare(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	for _, bad := range []string{"", "latest", "v", "x1.2"} {
		if _, ok := parseVersion(bad); ok {
			t.Errorf("parseVersion(%q) ok", bad)
		}
	}
}

// Every minimum in the table must parse, or judge would panic at run time.
func TestProductTableMinimumsParse(t *testing.T) {
	for _, p := range append(append([]product{}, agents...), sdks...) {
		if p.min != "" {
			mustVersion(p.min)
		}
		for _, b := range p.broken {
			mustVersion(b.version)
			mustVersion(b.fixed)
		}
	}
}
