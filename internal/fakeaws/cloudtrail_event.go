package fakeaws

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// RoleDelivery describes an API call made with an EC2 instance profile's credentials,
// which CloudTrail records with userIdentity.sessionContext.ec2RoleDelivery: "1.0" when
// the instance fetched the credentials over IMDSv1, "2.0" over IMDSv2.
type RoleDelivery struct {
	AccountID  string // default "123456789012"
	Region     string // default "us-east-1"
	InstanceID string // required: the role session name, hence LookupEvents' Username
	RoleName   string // default "imdsguard-test-role"
	// Delivery is written to ec2RoleDelivery verbatim ("1.0", "2.0", or anything else a
	// test needs); "" omits the field, as in records of sessions not made by EC2.
	Delivery    string
	EventName   string // default "DescribeInstances"
	EventSource string // default "ec2.amazonaws.com"
	UserAgent   string // default an aws-cli user agent
	SourceIP    string // default "10.0.0.1"
	Time        time.Time
	AccessKeyID string // default a random ASIA... key
}

// ctRecord is a CloudTrail record in the field order the service writes.
type ctRecord struct {
	EventVersion       string         `json:"eventVersion"`
	UserIdentity       ctUserIdentity `json:"userIdentity"`
	EventTime          string         `json:"eventTime"`
	EventSource        string         `json:"eventSource"`
	EventName          string         `json:"eventName"`
	AWSRegion          string         `json:"awsRegion"`
	SourceIPAddress    string         `json:"sourceIPAddress"`
	UserAgent          string         `json:"userAgent"`
	RequestParameters  any            `json:"requestParameters"`
	ResponseElements   any            `json:"responseElements"`
	RequestID          string         `json:"requestID"`
	EventID            string         `json:"eventID"`
	ReadOnly           bool           `json:"readOnly"`
	EventType          string         `json:"eventType"`
	ManagementEvent    bool           `json:"managementEvent"`
	RecipientAccountID string         `json:"recipientAccountId"`
	EventCategory      string         `json:"eventCategory"`
	TLSDetails         *ctTLSDetails  `json:"tlsDetails,omitempty"`
}

type ctUserIdentity struct {
	Type           string           `json:"type"`
	PrincipalID    string           `json:"principalId"`
	ARN            string           `json:"arn"`
	AccountID      string           `json:"accountId"`
	AccessKeyID    string           `json:"accessKeyId"`
	SessionContext ctSessionContext `json:"sessionContext"`
}

type ctSessionContext struct {
	SessionIssuer   ctSessionIssuer `json:"sessionIssuer"`
	Attributes      ctSessionAttrs  `json:"attributes"`
	EC2RoleDelivery string          `json:"ec2RoleDelivery,omitempty"`
}

type ctSessionIssuer struct {
	Type        string `json:"type"`
	PrincipalID string `json:"principalId"`
	ARN         string `json:"arn"`
	AccountID   string `json:"accountId"`
	UserName    string `json:"userName"`
}

type ctSessionAttrs struct {
	CreationDate     string `json:"creationDate"`
	MFAAuthenticated string `json:"mfaAuthenticated"`
}

type ctTLSDetails struct {
	TLSVersion               string `json:"tlsVersion"`
	CipherSuite              string `json:"cipherSuite"`
	ClientProvidedHostHeader string `json:"clientProvidedHostHeader"`
}

// RoleDeliveryEvent builds the event CloudTrail records for a call made by an instance
// with its instance-profile credentials: userIdentity of type AssumedRole whose session
// name is the instance ID, carrying sessionContext.ec2RoleDelivery. The lookup fields
// (Username, AccessKeyId, EventName, ...) agree with the record. Add it with AddEvent.
func RoleDeliveryEvent(d RoleDelivery) Event {
	if d.InstanceID == "" {
		panic("testsupport.RoleDeliveryEvent: InstanceID is required")
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&d.AccountID, "123456789012")
	def(&d.Region, "us-east-1")
	def(&d.RoleName, "imdsguard-test-role")
	def(&d.EventName, "DescribeInstances")
	def(&d.EventSource, "ec2.amazonaws.com")
	def(&d.UserAgent, "aws-cli/2.15.0 md/Botocore#1.34.0 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.11.6")
	def(&d.SourceIP, "10.0.0.1")
	def(&d.AccessKeyID, "ASIA"+randomID(upperAlnum, 16))
	if d.Time.IsZero() {
		d.Time = time.Now()
	}
	d.Time = d.Time.UTC().Truncate(time.Second) // CloudTrail records whole seconds

	roleID := "AROA" + randomID(upperAlnum, 17)
	eventID := newUUID()
	readOnly := isReadOnlyEventName(d.EventName)
	rec := ctRecord{
		EventVersion: "1.08",
		UserIdentity: ctUserIdentity{
			Type:        "AssumedRole",
			PrincipalID: roleID + ":" + d.InstanceID,
			ARN:         fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", d.AccountID, d.RoleName, d.InstanceID),
			AccountID:   d.AccountID,
			AccessKeyID: d.AccessKeyID,
			SessionContext: ctSessionContext{
				SessionIssuer: ctSessionIssuer{
					Type:        "Role",
					PrincipalID: roleID,
					ARN:         fmt.Sprintf("arn:aws:iam::%s:role/%s", d.AccountID, d.RoleName),
					AccountID:   d.AccountID,
					UserName:    d.RoleName,
				},
				// Instance-profile sessions are refreshed hourly, so the credentials
				// used were issued within the hour before the call.
				Attributes: ctSessionAttrs{
					CreationDate:     d.Time.Add(-17 * time.Minute).Format(time.RFC3339),
					MFAAuthenticated: "false",
				},
				EC2RoleDelivery: d.Delivery,
			},
		},
		EventTime:          d.Time.Format(time.RFC3339),
		EventSource:        d.EventSource,
		EventName:          d.EventName,
		AWSRegion:          d.Region,
		SourceIPAddress:    d.SourceIP,
		UserAgent:          d.UserAgent,
		RequestID:          newUUID(),
		EventID:            eventID,
		ReadOnly:           readOnly,
		EventType:          "AwsApiCall",
		ManagementEvent:    true,
		RecipientAccountID: d.AccountID,
		EventCategory:      "Management",
		TLSDetails: &ctTLSDetails{
			TLSVersion:               "TLSv1.3",
			CipherSuite:              "TLS_AES_128_GCM_SHA256",
			ClientProvidedHostHeader: fmt.Sprintf("%s.%s.amazonaws.com", serviceHost(d.EventSource), d.Region),
		},
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		panic(err) // only plain strings and bools: cannot happen
	}
	return Event{
		EventID:         eventID,
		EventName:       d.EventName,
		EventSource:     d.EventSource,
		EventTime:       d.Time,
		Username:        d.InstanceID,
		ReadOnly:        fmt.Sprint(readOnly),
		AccessKeyID:     d.AccessKeyID,
		CloudTrailEvent: string(raw),
	}
}

// serviceHost turns "ec2.amazonaws.com" into "ec2".
func serviceHost(source string) string {
	host, _, _ := strings.Cut(source, ".")
	return host
}
