package fakeaws

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// TestSeedInstancesProfileOnEvery: every instance of a multi-instance launch has the
// instance profile, as in EC2 (moto attaches it to the first only).
func TestSeedInstancesProfileOnEvery(t *testing.T) {
	moto := Moto(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := ec2.NewFromConfig(AWSConfig("us-east-1"), func(o *ec2.Options) { o.BaseEndpoint = aws.String(moto.URL) })
	seeded, err := SeedInstances(ctx, client, InstanceSpec{Count: 3, InstanceProfileName: "app"})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(seeded))
	for i, s := range seeded {
		ids[i] = s.ID
	}
	out, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			n++
			if inst.IamInstanceProfile == nil || aws.ToString(inst.IamInstanceProfile.Arn) == "" {
				t.Errorf("%s has no instance profile", aws.ToString(inst.InstanceId))
			}
		}
	}
	if n != 3 {
		t.Fatalf("%d instances described, want 3", n)
	}
}

// TestAssociateProfileTwice: an association the SDK sends again after a lost reply finds
// the profile already attached; that is success when it is the profile asked for, and
// an error when it is another.
func TestAssociateProfileTwice(t *testing.T) {
	moto := Moto(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := ec2.NewFromConfig(AWSConfig("us-east-1"), func(o *ec2.Options) { o.BaseEndpoint = aws.String(moto.URL) })
	seeded, err := SeedInstances(ctx, client, InstanceSpec{Count: 1, InstanceProfileName: "twice"})
	if err != nil {
		t.Fatal(err)
	}
	if err := associateProfile(ctx, client, seeded[0].ID, "twice"); err != nil {
		t.Errorf("the same profile again: %v", err)
	}
	if err := ensureInstanceProfile(ctx, iamFor(client), "other"); err != nil {
		t.Fatal(err)
	}
	if err := associateProfile(ctx, client, seeded[0].ID, "other"); err == nil {
		t.Error("another profile over the attached one was taken for success")
	}
}
