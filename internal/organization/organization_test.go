package organization_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"

	"github.com/imdsguard/imdsguard/internal/fakeaws"
	"github.com/imdsguard/imdsguard/internal/organization"
	"github.com/imdsguard/imdsguard/internal/testsupport"
)

func TestMain(m *testing.M) { testsupport.RunWithMoto(m) }

// TestAccounts lists an organization from moto: all its accounts, those of one
// organizational unit and the units below it, and fails on a reply without its list.
func TestAccounts(t *testing.T) {
	moto := testsupport.Moto(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := fakeaws.AWSConfig("us-east-1")
	cfg.BaseEndpoint = aws.String(moto.URL)
	api := organizations.NewFromConfig(cfg)
	if _, err := api.CreateOrganization(ctx, &organizations.CreateOrganizationInput{FeatureSet: orgtypes.OrganizationFeatureSetAll}); err != nil {
		t.Fatal(err)
	}
	roots, err := api.ListRoots(ctx, &organizations.ListRootsInput{})
	if err != nil {
		t.Fatal(err)
	}
	root := aws.ToString(roots.Roots[0].Id)
	ou := func(parent, name string) string {
		out, err := api.CreateOrganizationalUnit(ctx, &organizations.CreateOrganizationalUnitInput{ParentId: aws.String(parent), Name: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.OrganizationalUnit.Id)
	}
	workloads := ou(root, "workloads")
	prod := ou(workloads, "prod")
	account := func(name, parent string) string {
		created, err := api.CreateAccount(ctx, &organizations.CreateAccountInput{AccountName: aws.String(name), Email: aws.String(name + "@example.com")})
		if err != nil {
			t.Fatal(err)
		}
		status, err := api.DescribeCreateAccountStatus(ctx, &organizations.DescribeCreateAccountStatusInput{CreateAccountRequestId: created.CreateAccountStatus.Id})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(status.CreateAccountStatus.AccountId)
		if _, err := api.MoveAccount(ctx, &organizations.MoveAccountInput{AccountId: aws.String(id), SourceParentId: aws.String(root), DestinationParentId: aws.String(parent)}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	inWorkloads, inProd, elsewhere := account("dev", workloads), account("shop", prod), account("sandbox", root)

	all, err := organization.Lister{API: api}.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{inWorkloads, inProd, elsewhere, "123456789012"} {
		if !slices.Contains(all, id) {
			t.Errorf("the organization's accounts %v lack %s", all, id)
		}
	}
	below, err := organization.Lister{API: api, Units: []string{workloads, prod}}.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{inWorkloads, inProd}; !slices.Equal(below, slices.Sorted(slices.Values(want))) {
		t.Errorf("the accounts of %s and below: %v, want %v (each once)", workloads, below, want)
	}

	for _, op := range []string{"organizations:ListAccounts", "organizations:ListAccountsForParent", "organizations:ListOrganizationalUnitsForParent"} {
		t.Run("empty 200 of "+op, func(t *testing.T) {
			proxy := fakeaws.StartFaultProxy(moto.URL, fakeaws.FaultPlan{Ops: map[string]fakeaws.OpFaults{op: {Probabilities: map[fakeaws.FaultKind]float64{fakeaws.FaultEmpty200: 1}}}})
			defer proxy.Close()
			faulty := cfg.Copy()
			faulty.BaseEndpoint = aws.String(proxy.URL)
			l := organization.Lister{API: organizations.NewFromConfig(faulty)}
			if op != "organizations:ListAccounts" {
				l.Units = []string{workloads}
			}
			got, err := l.Accounts(ctx)
			if err == nil || !strings.Contains(err.Error(), op) {
				t.Errorf("accounts %v, err %v; want an error naming %s", got, err, op)
			}
			if proxy.Requests(op) == 0 {
				t.Errorf("no %s reached the proxy: %s", op, fmt.Sprint(proxy.Ops()))
			}
		})
	}
}
