package pause_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/pause"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

func TestMain(m *testing.M) { os.Exit(testsupport.RunWithMoto(m)) }

// TestPauseSwitch reads the parameter from moto's SSM through the real client: true
// pauses in any case, anything else and a missing parameter do not, and a failed read is
// an error (never "not paused").
func TestPauseSwitch(t *testing.T) {
	moto := testsupport.Moto(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := ssm.NewFromConfig(fakeaws.AWSConfig("us-east-1"), func(o *ssm.Options) { o.BaseEndpoint = aws.String(moto.URL) })
	s := &pause.Switch{API: client, Name: "/imdsguard/paused"}
	if paused, _, err := s.Paused(ctx); paused || err != nil {
		t.Errorf("missing parameter: paused %v, %v", paused, err)
	}
	for value, want := range map[string]bool{"true": true, " TRUE ": true, "false": false, "yes": false, "1": false} {
		if _, err := client.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(s.Name), Value: aws.String(value),
			Type: ssmtypes.ParameterTypeString, Overwrite: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
		paused, by, err := s.Paused(ctx)
		if err != nil || paused != want || (paused && !strings.Contains(by, s.Name)) {
			t.Errorf("%q: paused %v (%q), %v; want %v", value, paused, by, err, want)
		}
	}
	broken := &pause.Switch{API: ssm.NewFromConfig(fakeaws.AWSConfig("us-east-1"), func(o *ssm.Options) {
		o.BaseEndpoint = aws.String("http://127.0.0.1:1")
		o.RetryMaxAttempts = 1
	}), Name: s.Name}
	if _, _, err := broken.Paused(ctx); err == nil {
		t.Error("an unreachable SSM read as not paused")
	}
}
