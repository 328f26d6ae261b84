package testsupport

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
)

// SecretsManager is a Secrets Manager client of the shared, reset moto_server.
func SecretsManager(t testing.TB) *secretsmanager.Client {
	t.Helper()
	m := Moto(t)
	return secretsmanager.NewFromConfig(fakeaws.AWSConfig("us-east-1"), func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(m.URL)
	})
}

// CreateSecret stores value as the secret name and returns its full ARN.
func CreateSecret(t testing.TB, sm *secretsmanager.Client, name, value string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)})
	if err != nil {
		t.Fatalf("CreateSecret %s: %v", name, err)
	}
	return aws.ToString(out.ARN)
}
