// Package pause reads the operators' kill switch (DESIGN.md section 9): an SSM parameter
// whose value true pauses every enforcement without a deploy. remediate reads it on
// every invocation that would enforce.
package pause

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// SSMAPI is the part of the SSM client the switch uses.
type SSMAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// Switch is the pause parameter.
type Switch struct {
	API  SSMAPI
	Name string
}

// Paused reads the parameter: the value true (in any case, spaces around it ignored)
// pauses, and by says where the pause was set. A parameter that does not exist is no
// pause. Any other failure is returned, and the caller must then not enforce: a switch
// that cannot be read may be set.
func (s *Switch) Paused(ctx context.Context) (paused bool, by string, err error) {
	out, err := s.API.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(s.Name)})
	var notFound *ssmtypes.ParameterNotFound
	switch {
	case errors.As(err, &notFound):
		return false, "", nil
	case err != nil:
		return false, "", fmt.Errorf("ssm:GetParameter %s (the pause switch): %w", s.Name, err)
	case out == nil || out.Parameter == nil:
		return false, "", fmt.Errorf("ssm:GetParameter %s (the pause switch): a reply without the parameter", s.Name)
	}
	value := aws.ToString(out.Parameter.Value)
	if strings.EqualFold(strings.TrimSpace(value), "true") {
		return true, fmt.Sprintf("SSM parameter %s = %s", s.Name, value), nil
	}
	return false, "", nil
}
