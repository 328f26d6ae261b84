package sources

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
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
		// A filter rather than ImageIds: EC2 fails the whole call for an id it does not
		// know, and an AMI deregistered since an instance launched from it is common.
		in := &ec2.DescribeImagesInput{Filters: []ec2types.Filter{{Name: aws.String("image-id"), Values: batch}},
			IncludeDeprecated: aws.Bool(true), IncludeDisabled: aws.Bool(true)}
		err := readPages(opDescribeImages, fmt.Sprintf("%s for %d AMIs", opDescribeImages, len(batch)), func(token *string) (*string, error) {
			in.NextToken = token
			page, err := api.DescribeImages(ctx, in)
			if err == nil && (page == nil || page.Images == nil) {
				err = incomplete(opDescribeImages, "no Images")
			}
			if err != nil {
				return nil, err
			}
			for _, img := range page.Images {
				out[aws.ToString(img.ImageId)] = string(img.ImdsSupport)
			}
			return page.NextToken, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
