package fakeaws

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
)

// actionHeader carries a request's action to the proxy's response hook.
const actionHeader = "X-Imdsguard-Fake-Action"

// SetImdsSupport sets the ImdsSupport ("v2.0") the proxy adds to an AMI in
// DescribeImages replies, as EC2 reports it for an AMI registered with it; moto never
// returns the field.
func (p *EC2DryRun) SetImdsSupport(imageID, support string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.imdsSupport[imageID] = support
}

var imageIDElement = regexp.MustCompile(`<imageId>(ami-[0-9a-f]+)</imageId>`)

// addImdsSupport adds <imdsSupport> after the <imageId> of each AMI that has one set,
// in moto's DescribeImages replies.
func (p *EC2DryRun) addImdsSupport(resp *http.Response) error {
	if resp.Request == nil || resp.Request.Header.Get(actionHeader) != "DescribeImages" || resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("reading moto's DescribeImages reply: %w", err)
	}
	p.mu.Lock()
	body = imageIDElement.ReplaceAllFunc(body, func(m []byte) []byte {
		if support, ok := p.imdsSupport[string(imageIDElement.FindSubmatch(m)[1])]; ok {
			// m is a slice of body: appending to it would overwrite what follows.
			return []byte(string(m) + "<imdsSupport>" + xmlEscape(support) + "</imdsSupport>")
		}
		return m
	})
	p.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}
