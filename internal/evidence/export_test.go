package evidence

import (
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/imdsguard/imdsguard/internal/policy"
)

// ParseDelivery feeds one LookupEvents event to a fresh tally for an instance with the
// given addresses, as CredentialDeliveries does with every event of a page, and returns
// the usage the tally makes of it.
func ParseDelivery(ev cttypes.Event, addresses []string) (*policy.CloudTrailUsage, error) {
	t := newDeliveryTally(addresses)
	if err := t.add(ev); err != nil {
		return nil, err
	}
	return t.result(), nil
}
