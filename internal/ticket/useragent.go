package ticket

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The user agent of an IMDSv1 credential delivery (CloudTrail's userAgent of a call made
// with credentials whose ec2RoleDelivery is "1.0") names the software that fetched them.
// AdviseUserAgent maps it to the SDK, CLI or agent and to the first version that speaks
// IMDSv2, so a ticket can say exactly what to upgrade.
//
// Minimum versions that speak IMDSv2, and where they come from:
//
//	AWS CLI v1                    1.16.289   [aws]
//	AWS CLI v2                    every release (2.0.0 GA, Feb 2020, is newer than IMDSv2, Nov 2019) [inferred]
//	AWS SDK for Python, botocore  1.13.25    [aws] (botocore does the IMDS calls; boto3 pulls it in)
//	AWS SDK for Python, Boto3     1.12.6     [aws] (only used when the user agent has no botocore token)
//	AWS SDK for Java 1.x          1.11.678   [aws]
//	AWS SDK for Java 2.x          2.10.21    [aws]
//	AWS SDK for Go v1             1.25.38    [aws]
//	AWS SDK for Go v2             0.19.0     [aws] (so every 1.x release)
//	AWS SDK for JavaScript v2     2.722.0    [aws] ("AWS SDK for JavaScript in Node.js")
//	AWS SDK for JavaScript v3     every release (IMDSv2 landed before GA: aws/aws-sdk-js-v3#1358, #1929)
//	AWS SDK for .NET              3.3.634.1  [aws]; the user agent carries AWSSDK.Core, and
//	                              release 3.3.634.1 (2019-11-19) shipped Core 3.3.103.66
//	                              ("Updates IMDS to obtain a metadata token", aws-sdk-net SDK.CHANGELOG.md)
//	AWS Tools for PowerShell      4.0.1.0    [aws]
//	AWS SDK for Ruby v3           3.79.0     [aws] (aws-sdk-core; see also aws/aws-sdk-ruby#2174)
//	AWS SDK for Ruby v2           2.11.401   [gist] (release v2.11.401 of aws/aws-sdk-ruby)
//	AWS SDK for PHP v3            3.147.7    [aws]
//	AWS SDK for C++               1.7.229    [aws]
//	AWS SDK for Kotlin            1.1.4      [aws]
//	AWS SDK for Rust              every release (aws-config's IMDS client is token-based from the start) [inferred]
//	Amazon SSM Agent              3.0.431.0  IMDSv2 from 2.3.814.0 (aws/amazon-ssm-agent#277), but it tried
//	                              IMDSv1 first until 3.0.431.0 (aws/amazon-ssm-agent#319)
//	AWS CodeDeploy agent          1.2.1      "Added: Support for IMDSv2" (aws/aws-codedeploy-agent#271, #263);
//	                              the Windows agent lagged behind (aws/aws-codedeploy-agent#312)
//	Amazon VPC CNI (aws-node)     1.6.0      (bottlerocket-os/bottlerocket#784, aws/amazon-vpc-cni-k8s#793);
//	                              1.10.0 regressed (entrypoint used IMDSv1), fixed in 1.10.1 (aws/amazon-vpc-cni-k8s#1743)
//	kubelet                       1.18.0     aws-sdk-go bumped in kubernetes/kubernetes#87253 (EKS builds of
//	                              1.16/1.17 were patched: bottlerocket-os/bottlerocket#784)
//	Amazon ECS container agent    no documented floor (aws/amazon-ecs-agent#2322): judged by its aws-sdk-go
//	Amazon CloudWatch agent       no documented floor (aws/amazon-cloudwatch-agent#249, #253): judged by its SDK
//
//	[aws]    "Use a supported AWS SDK", Amazon EC2 User Guide,
//	         https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/use-a-supported-sdk-version-for-imdsv2.html
//	[gist]   https://gist.github.com/breser/7ad0c4f07ccf4ae150d695248df76a8b (community list, links the releases)
//	[inferred] no published minimum; every release postdates IMDSv2 support.
//
// An SDK that speaks IMDSv2 still falls back to IMDSv1 when its token request fails
// (hop limit 1 inside a container, a proxy that refuses PUT) unless IMDSv1 fallback is
// disabled (AWS_EC2_METADATA_V1_DISABLED=true, aws/aws-sdk-go CHANGELOG "Added environment
// and shared config support for disabling IMDSv1 fallback"); and code may call IMDS
// itself without the SDK. The advice says so rather than "upgrade".

// SDKAdvice is what a ticket says about one user agent.
type SDKAdvice struct {
	// UserAgent is the user agent as CloudTrail recorded it.
	UserAgent string
	// SDK names the software judged (for an agent that embeds an SDK, the SDK inside it).
	SDK string
	// Version is the version of SDK found in the user agent.
	Version string
	// MinVersion is the first version of SDK that speaks IMDSv2; "" when none is
	// documented, "0.0.0" when every release does.
	MinVersion string
	// Outdated is true when Version is below MinVersion.
	Outdated bool
	// Recognised is true when the user agent names a known SDK, CLI or agent.
	Recognised bool
	// Advice is one sentence for the ticket: "upgrade ... from ... to at least ...",
	// "this version speaks IMDSv2: ...", or "unrecognised: ...".
	Advice string
}

// Advice sentences, shared with the tests.
const (
	adviceSpeaksV2 = "this version speaks IMDSv2: the caller may force IMDSv1 (e.g. AWS_EC2_METADATA_V1_DISABLED unset / a custom metadata client)" +
		"; the SDK falls back to IMDSv1 when its token request fails, e.g. a hop limit of 1 inside a container or a proxy that refuses PUT"
	adviceUnrecognised = "unrecognised: not a known AWS SDK, CLI or agent; find the process with the IMDS packet analyzer"
	anyVersion         = "0.0.0"
)

// product is one row of the minimum-version table.
type product struct {
	name string
	// tokens are lower-case user-agent product names ("aws-cli" in "aws-cli/1.16.287").
	tokens []string
	// prefix matches tokens that start with one of tokens.
	prefix bool
	// major restricts the row to versions with this first component (0: any).
	major int
	// min is the first version that speaks IMDSv2: "" undocumented, anyVersion for all.
	min string
	// agent marks software that embeds an SDK. ownClient: the agent talks to IMDS with
	// its own code, so its version decides even when the user agent names its SDK.
	agent, ownClient bool
	// note is appended to the upgrade advice.
	note string
	// broken lists releases at or above min that still call IMDSv1.
	broken []brokenRelease
	// noVersion: the token's version is not the SDK's (only the name is useful).
	noVersion bool
}

type brokenRelease struct{ version, fixed, why string }

// agents are matched before SDKs: an agent's user agent usually also names its SDK.
var agents = []product{
	{name: "Amazon SSM Agent", tokens: []string{"amazon-ssm-agent"}, min: "3.0.431.0", agent: true, ownClient: true,
		note: " (2.3.814.0 and later speak IMDSv2 but try IMDSv1 first)"},
	{name: "AWS CodeDeploy agent", tokens: []string{"codedeploy-agent", "aws-codedeploy-agent"}, min: "1.2.1", agent: true, ownClient: true},
	{name: "Amazon VPC CNI (aws-node)", tokens: []string{"amazon-vpc-cni-k8s", "amazon-k8s-cni", "aws-node"}, min: "1.6.0", agent: true,
		broken: []brokenRelease{{"1.10.0", "1.10.1", "its entrypoint read instance metadata over IMDSv1"}}},
	{name: "kubelet", tokens: []string{"kubelet"}, min: "1.18.0", agent: true},
	{name: "Amazon ECS container agent", tokens: []string{"amazon-ecs-agent"}, agent: true},
	{name: "Amazon CloudWatch agent", tokens: []string{"cwagent", "amazon-cloudwatch-agent"}, agent: true},
}

// sdks in priority order: when a user agent names several (PowerShell and its .NET core,
// the CLI and its botocore, boto3 and botocore), the first row that matches decides.
var sdks = []product{
	{name: "AWS Tools for PowerShell", tokens: []string{"awspowershell", "awspowershell.common", "awspowershell.netcore", "aws.tools.common"}, min: "4.0.1.0"},
	{name: "AWS CLI v1", tokens: []string{"aws-cli"}, major: 1, min: "1.16.289"},
	{name: "AWS CLI v2", tokens: []string{"aws-cli"}, major: 2, min: anyVersion},
	{name: "AWS SDK for Python (botocore)", tokens: []string{"botocore"}, min: "1.13.25",
		note: " (boto3 1.12.6 or later brings a botocore that does)"},
	{name: "AWS SDK for Python (Boto3)", tokens: []string{"boto3"}, min: "1.12.6"},
	{name: "AWS SDK for Java 1.x", tokens: []string{"aws-sdk-java"}, major: 1, min: "1.11.678"},
	{name: "AWS SDK for Java 2.x", tokens: []string{"aws-sdk-java"}, major: 2, min: "2.10.21"},
	{name: "AWS SDK for Go v2", tokens: []string{"aws-sdk-go-v2"}, min: "0.19.0"},
	{name: "AWS SDK for Go v1", tokens: []string{"aws-sdk-go"}, min: "1.25.38"},
	{name: "AWS SDK for JavaScript v2", tokens: []string{"aws-sdk-nodejs"}, min: "2.722.0"},
	{name: "AWS SDK for JavaScript v2", tokens: []string{"aws-sdk-js"}, major: 2, min: "2.722.0"},
	{name: "AWS SDK for JavaScript v3", tokens: []string{"aws-sdk-js"}, major: 3, min: anyVersion},
	{name: "AWS SDK for .NET (AWSSDK.Core)", tokens: []string{"aws-sdk-dotnet-core", "aws-sdk-net", "aws-sdk-net-core"}, min: "3.3.103.66",
		note: " (AWS SDK for .NET release 3.3.634.1)"},
	{name: "AWS SDK for .NET", tokens: []string{"aws-sdk-dotnet-"}, prefix: true, min: "3.3.103.66", noVersion: true},
	{name: "AWS SDK for Ruby v3 (aws-sdk-core)", tokens: []string{"aws-sdk-ruby3"}, min: "3.79.0"},
	{name: "AWS SDK for Ruby v2", tokens: []string{"aws-sdk-ruby2"}, min: "2.11.401"},
	{name: "AWS SDK for PHP", tokens: []string{"aws-sdk-php"}, min: "3.147.7"},
	{name: "AWS SDK for C++", tokens: []string{"aws-sdk-cpp"}, min: "1.7.229"},
	{name: "AWS SDK for Kotlin", tokens: []string{"aws-sdk-kotlin"}, min: "1.1.4"},
	{name: "AWS SDK for Rust", tokens: []string{"aws-sdk-rust"}, min: anyVersion},
}

// ecsAgentPattern is the ECS agent's own user-agent form: "Amazon ECS Agent - v1.36.2 (abcdef0)".
var ecsAgentPattern = regexp.MustCompile(`(?i)amazon ecs agent - v([0-9][0-9a-z.\-]*)`)

type uaToken struct{ name, version string }

// uaTokens splits a user agent into product/version tokens. SEP-style metadata
// ("md/aws-sdk-net-core#3.7.300.1") also yields its inner name#version.
func uaTokens(ua string) []uaToken {
	var out []uaToken
	if m := ecsAgentPattern.FindStringSubmatch(ua); m != nil {
		out = append(out, uaToken{"amazon-ecs-agent", m[1]})
	}
	for _, field := range strings.FieldsFunc(ua, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' || r == '[' || r == ']' }) {
		field = strings.Trim(field, "()[];,\"'")
		name, version, ok := strings.Cut(field, "/")
		if !ok || name == "" {
			continue
		}
		out = append(out, uaToken{strings.ToLower(name), version})
		if inner, innerVersion, ok := strings.Cut(version, "#"); ok && inner != "" {
			out = append(out, uaToken{strings.ToLower(inner), innerVersion})
		}
	}
	return out
}

// find returns the first token that p matches, in user-agent order.
func (p product) find(tokens []uaToken) (uaToken, bool) {
	for _, t := range tokens {
		for _, name := range p.tokens {
			if t.name == name || (p.prefix && strings.HasPrefix(t.name, name)) {
				if p.major != 0 {
					v, ok := parseVersion(t.version)
					if !ok || v[0] != p.major {
						continue
					}
				}
				return t, true
			}
		}
	}
	return uaToken{}, false
}

// AdviseUserAgent maps a CloudTrail user agent to the SDK, CLI or agent it names and
// says what to do about it.
func AdviseUserAgent(ua string) SDKAdvice {
	tokens := uaTokens(ua)
	out := SDKAdvice{UserAgent: ua}

	var sdk product
	var sdkToken uaToken
	foundSDK := false
	for _, p := range sdks {
		if t, ok := p.find(tokens); ok {
			sdk, sdkToken, foundSDK = p, t, true
			break
		}
	}
	for _, a := range agents {
		t, ok := a.find(tokens)
		if !ok {
			continue
		}
		// An agent that talks to IMDS through its SDK is judged by the SDK when the user
		// agent names it, or when the agent has no documented minimum of its own.
		if foundSDK && (!a.ownClient || a.min == "") {
			return judge(out, sdk, sdkToken, fmt.Sprintf(" (inside %s %s)", a.name, strings.TrimSpace(t.version)))
		}
		return judge(out, a, t, "")
	}
	if foundSDK {
		return judge(out, sdk, sdkToken, "")
	}
	out.Advice = adviceUnrecognised
	return out
}

// judge compares the version in t with p's minimum.
func judge(out SDKAdvice, p product, t uaToken, inside string) SDKAdvice {
	out.Recognised = true
	out.SDK = p.name + inside
	out.MinVersion = p.min
	version := strings.TrimSpace(t.version)
	if !p.noVersion {
		out.Version = version
	}
	have, ok := parseVersion(version)
	switch {
	case p.noVersion || !ok:
		if p.min == "" || p.min == anyVersion {
			out.Advice = fmt.Sprintf("could not read the version of %s; upgrade it to the latest release", out.SDK)
		} else {
			out.Advice = fmt.Sprintf("could not read the version of %s; make sure it is at least %s%s", out.SDK, p.min, p.note)
		}
	case p.min == "":
		out.Advice = fmt.Sprintf("no documented minimum version for IMDSv2 in %s: upgrade it from %s to the latest release", out.SDK, version)
	case compareVersions(have, mustVersion(p.min)) < 0:
		out.Outdated = true
		out.Advice = fmt.Sprintf("upgrade %s from %s to at least %s%s", out.SDK, version, p.min, p.note)
	default:
		for _, b := range p.broken {
			if compareVersions(have, mustVersion(b.version)) == 0 {
				out.Outdated = true
				out.MinVersion = b.fixed
				out.Advice = fmt.Sprintf("upgrade %s from %s to at least %s (%s: %s)", out.SDK, version, b.fixed, b.version, b.why)
				return out
			}
		}
		out.Advice = adviceSpeaksV2
	}
	return out
}

// parseVersion reads the dotted numeric prefix of v: "v1.18.9-eks" is 1.18.9, "2.0.0dev4"
// is 2.0.0, "1.8.0_252" is 1.8.0.
func parseVersion(v string) ([]int, bool) {
	v = strings.TrimPrefix(strings.TrimPrefix(v, "v"), "V")
	var parts []int
	for _, seg := range strings.Split(v, ".") {
		end := 0
		for end < len(seg) && seg[end] >= '0' && seg[end] <= '9' {
			end++
		}
		if end == 0 {
			break
		}
		n, err := strconv.Atoi(seg[:end])
		if err != nil {
			break
		}
		parts = append(parts, n)
		if end < len(seg) {
			break
		}
	}
	return parts, len(parts) > 0
}

func mustVersion(v string) []int {
	parts, ok := parseVersion(v)
	if !ok {
		panic("ticket: bad minimum version " + v)
	}
	return parts
}

// compareVersions compares numerically, missing components counting as zero.
func compareVersions(a, b []int) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
