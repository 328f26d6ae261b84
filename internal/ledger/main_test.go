package ledger_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/ledger"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

func TestMain(m *testing.M) { os.Exit(testsupport.RunWithMoto(m)) }

const (
	testTable  = "imdsguard-ledger"
	testRegion = "us-east-1"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// countingAPI is the real client, counting the Query calls History makes.
type countingAPI struct {
	*dynamodb.Client
	queries atomic.Int64
}

func (c *countingAPI) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.queries.Add(1)
	return c.Client.Query(ctx, in, opts...)
}

// fixture is a fresh moto with the ledger table created as the SAM template creates it.
type fixture struct {
	client *dynamodb.Client
	api    *countingAPI
	ledger *ledger.Ledger
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	moto := testsupport.Moto(t)
	client := dynamodb.NewFromConfig(fakeaws.AWSConfig(testRegion), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(moto.URL)
	})
	createTable(t, client, testTable)
	api := &countingAPI{Client: client}
	return &fixture{client: client, api: api, ledger: &ledger.Ledger{API: api, Table: testTable}}
}

// createTable creates the key schema of the SAM template: pk (S) / sk (S), on demand.
func createTable(t *testing.T, client *dynamodb.Client, name string) {
	t.Helper()
	_, err := client.CreateTable(testContext(t), &dynamodb.CreateTableInput{
		TableName: aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("CreateTable %s: %v", name, err)
	}
}

// rawItem reads an item with the real client, bypassing the ledger; nil when absent.
func (f *fixture) rawItem(t *testing.T, pk, sk string) map[string]types.AttributeValue {
	t.Helper()
	out, err := f.client.GetItem(testContext(t), &dynamodb.GetItemInput{
		TableName: aws.String(testTable),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: pk},
			"sk": &types.AttributeValueMemberS{Value: sk},
		},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("GetItem %s %s: %v", pk, sk, err)
	}
	if len(out.Item) == 0 {
		return nil
	}
	return out.Item
}

func attrS(t *testing.T, item map[string]types.AttributeValue, name string) string {
	t.Helper()
	v, ok := item[name].(*types.AttributeValueMemberS)
	if !ok {
		t.Fatalf("attribute %s is %T (%v), want S", name, item[name], item[name])
	}
	return v.Value
}

func attrN(t *testing.T, item map[string]types.AttributeValue, name string) string {
	t.Helper()
	v, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		t.Fatalf("attribute %s is %T (%v), want N", name, item[name], item[name])
	}
	return v.Value
}
