package trigger

import "github.com/imdsguard/imdsguard/internal/policy"

type stateChangeDetail struct {
	InstanceID string `json:"instance-id"`
	State      string `json:"state"`
}

// parseStateChange reads an "EC2 Instance State-change Notification": an instance that
// starts running is judged (the guard defers the instances that are not running, so
// this is when their verdict can be made); every other state is ignored.
func parseStateChange(e *event) (Request, error) {
	var d stateChangeDetail
	if err := e.decodeDetail(&d); err != nil {
		return Request{}, err
	}
	switch {
	case d.InstanceID == "":
		return Request{}, e.errf("detail.instance-id is missing")
	case !policy.ValidInstanceID(d.InstanceID):
		return Request{}, e.errf("detail.instance-id %q is not an instance id", d.InstanceID)
	case d.State == "":
		return Request{}, e.errf("detail.state is missing")
	}
	account, region, err := e.where(e.account, "account", e.region, "region")
	if err != nil {
		return Request{}, err
	}
	b := e.request()
	if d.State != "running" {
		return b.ignore("instance %s is %s, not running", d.InstanceID, show(d.State))
	}
	b.add(Ref{AccountID: account, Region: region, InstanceID: d.InstanceID})
	return b.done()
}
