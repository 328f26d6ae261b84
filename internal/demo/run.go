package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
)

// Region is the region the sample fleet lives in.
const Region = "us-east-1"

// accountID is the account moto puts everything in.
const accountID = "123456789012"

// Emulators are the running AWS stand-ins with a sample fleet in them.
type Emulators struct {
	Moto       *fakeaws.MotoServer
	CloudTrail *fakeaws.CloudTrail
	Fleet      []Seeded
}

// Stop stops what Start started.
func (e *Emulators) Stop() {
	if e.CloudTrail != nil {
		e.CloudTrail.Close()
	}
	if e.Moto != nil {
		e.Moto.Stop()
	}
}

// Start starts moto_server and the CloudTrail stand-in and seeds copies of every kind of
// instance into them.
func Start(ctx context.Context, copies int, now time.Time) (*Emulators, error) {
	moto, err := fakeaws.StartMoto(ctx)
	if err != nil {
		return nil, fmt.Errorf("starting moto_server (`make moto` installs it into .venv; or pip install \"moto[server]==5.2.1\" and put it on the PATH): %w", err)
	}
	e := &Emulators{Moto: moto, CloudTrail: fakeaws.NewCloudTrail()}
	cfg := fakeaws.AWSConfig(Region)
	clients := Clients{
		EC2:        ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(moto.URL) }),
		CloudWatch: cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(moto.URL) }),
		CloudTrail: e.CloudTrail,
	}
	e.Fleet, err = Seed(ctx, clients, append(Kinds(now.UTC()), GroupKinds()...), copies, now)
	if err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

// AWSEnv is the standard AWS environment that points any AWS client configured the
// standard way (as the CLI is) at the emulators with throw-away credentials, never at a
// real account. dir is a scratch directory: the shared config files are looked for there
// so that a developer's profiles cannot interfere.
func (e *Emulators) AWSEnv(dir string) map[string]string {
	return AWSEnv(e.Moto.URL, e.CloudTrail.URL, dir)
}

// AWSEnv is Emulators.AWSEnv for emulators started elsewhere (by tests).
func AWSEnv(motoURL, cloudTrailURL, dir string) map[string]string {
	nowhere := filepath.Join(dir, "no-aws-config")
	return map[string]string{
		"AWS_ENDPOINT_URL":            motoURL,
		"AWS_ENDPOINT_URL_CLOUDTRAIL": cloudTrailURL,
		"AWS_ACCESS_KEY_ID":           "testing",
		"AWS_SECRET_ACCESS_KEY":       "testing",
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  Region,
		"AWS_PROFILE":                 "",
		"AWS_DEFAULT_PROFILE":         "",
		"AWS_CONFIG_FILE":             nowhere,
		"AWS_SHARED_CREDENTIALS_FILE": nowhere,
	}
}

// PointAWSAt sets AWSEnv in this process's environment.
func (e *Emulators) PointAWSAt(dir string) error {
	for k, v := range e.AWSEnv(dir) {
		if err := os.Setenv(k, v); err != nil {
			return fmt.Errorf("setting %s: %w", k, err)
		}
	}
	return nil
}
