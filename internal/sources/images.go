package sources

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/imdsguard/imdsguard/internal/evidence"
)

// ImagesAPI is the part of the EC2 client the AMIs are read with.
type ImagesAPI interface {
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
}

const (
	opDescribeImages = "ec2:DescribeImages"
	// imagesPerCall bounds the AMI ids of one DescribeImages call.
	imagesPerCall = 200
)

// ImdsSupport returns the ImdsSupport of each AMI in use ("v2.0" when instances launched
// from it get HttpTokens required; "" when it sets nothing), in calls of 200 ids. An AMI
// that no longer exists (deregistered, or not shared any more) is left out; every other
// one must be answered.
func ImdsSupport(ctx context.Context, api ImagesAPI, imageIDs []string) (map[string]string, error) {
	ids := slices.Compact(slices.Sorted(slices.Values(imageIDs)))
	out := make(map[string]string, len(ids))
	for batch := range slices.Chunk(ids, imagesPerCall) {
		in := &ec2.DescribeImagesInput{ImageIds: batch, IncludeDeprecated: aws.Bool(true), IncludeDisabled: aws.Bool(true)}
		chain := evidence.NewPageChain(opDescribeImages)
		for {
			page, err := api.DescribeImages(ctx, in)
			if err == nil && (page == nil || page.Images == nil) {
				err = &evidence.IncompleteReplyError{Operation: opDescribeImages, Problem: "no Images"}
			}
			if err != nil {
				return nil, fmt.Errorf("%s for %d AMIs: %w", opDescribeImages, len(batch), err)
			}
			for _, img := range page.Images {
				out[aws.ToString(img.ImageId)] = string(img.ImdsSupport)
			}
			next, err := chain.Next(page.NextToken)
			if err != nil {
				return nil, fmt.Errorf("%s for %d AMIs: %w", opDescribeImages, len(batch), err)
			}
			if next == nil {
				break
			}
			in.NextToken = next
		}
	}
	return out, nil
}
