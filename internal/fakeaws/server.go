package fakeaws

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// loopbackServer is the HTTP plumbing shared by the stand-ins: a server on 127.0.0.1:0.
// It deliberately avoids net/http/httptest so that non-test programs can use it.
type loopbackServer struct {
	url string
	srv *http.Server
}

func startLoopback(h http.Handler) *loopbackServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		// Binding an ephemeral loopback port only fails on a broken machine; the
		// constructors keep the simple signature the callers want.
		panic(fmt.Sprintf("testsupport: listen on 127.0.0.1:0: %v", err))
	}
	s := &loopbackServer{
		url: "http://" + l.Addr().String(),
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
	}
	go func() { _ = s.srv.Serve(l) }()
	return s
}

func (s *loopbackServer) close() { _ = s.srv.Close() }

// signedV4 reports whether the request carries a SigV4 Authorization header, as every
// real AWS endpoint requires; the signature itself is not checked.
func signedV4(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ")
}

// newUUID returns a random RFC 4122 version 4 UUID, the shape of AWS request and
// event IDs.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// randomID returns n random characters from alphabet.
func randomID(alphabet string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

const upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// pageToken is the opaque NextToken of both stand-ins: the position to resume from and
// a fingerprint of the request it belongs to, so that a token replayed with different
// parameters is rejected the way the real services reject it.
type pageToken struct {
	Request string `json:"r"`
	Time    int64  `json:"t,omitempty"`
	Seq     uint64 `json:"s,omitempty"`
	Offset  int    `json:"o,omitempty"`
}

func (p pageToken) encode() string {
	b, _ := json.Marshal(p)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadToken = errors.New("invalid token")

func decodePageToken(s, fingerprint string) (pageToken, error) {
	var p pageToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &p) != nil || p.Request != fingerprint {
		return pageToken{}, errBadToken
	}
	return p, nil
}

// fingerprint hashes the parts of a request that a page token is bound to.
func fingerprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}
