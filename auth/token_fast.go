package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Token verification runs on every API request and every socket upgrade, so the common case,
// a token this service signed, takes a fast path: compare the header with the one we write,
// check the HMAC with a pooled hasher, and parse the claims with a decoder that knows their
// shape. Anything unusual (another header, escapes in strings, unknown claims) falls back to
// golang-jwt and encoding/json, so the fast path only ever accepts what the slow one would.

// hs256Header is the encoded JOSE header golang-jwt writes for HS256 tokens.
var hs256Header = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

var (
	errTokenMalformed = errors.New("token malformed")
	errTokenSignature = errors.New("token signature invalid")
	errTokenExpired   = errors.New("token expired or without expiry")
	errNotFastPath    = errors.New("token needs the general parser")
)

// verifyScratch is the per-call working memory of verifyFast, pooled so that verifying a
// token allocates only the claims it returns.
type verifyScratch struct {
	mac hash.Hash
	buf []byte
	sum [sha256.Size]byte
	sig [sha256.Size]byte
}

type scratchPool struct{ p sync.Pool }

func newScratchPool(key []byte) *scratchPool {
	k := append([]byte(nil), key...)
	return &scratchPool{p: sync.Pool{New: func() any {
		return &verifyScratch{mac: hmac.New(sha256.New, k), buf: make([]byte, 0, 1024)}
	}}}
}

// verifyFast checks a token in the shape this service signs. errNotFastPath means "ask the
// general parser"; any other error is final.
func (s *signer) verifyFast(token string, now time.Time) (*Claims, error) {
	dot1 := strings.IndexByte(token, '.')
	dot2 := strings.LastIndexByte(token, '.')
	if dot1 < 0 || dot2 <= dot1 {
		return nil, errTokenMalformed
	}
	if token[:dot1] != hs256Header {
		return nil, errNotFastPath
	}
	x := s.scratch.p.Get().(*verifyScratch)
	defer s.scratch.p.Put(x)
	if base64.RawURLEncoding.DecodedLen(len(token)-dot2-1) != len(x.sig) {
		return nil, errTokenSignature
	}
	if _, err := base64.RawURLEncoding.Decode(x.sig[:], []byte(token[dot2+1:])); err != nil {
		return nil, errTokenSignature
	}
	x.buf = append(x.buf[:0], token[:dot2]...)
	x.mac.Reset()
	_, _ = x.mac.Write(x.buf)
	if !hmac.Equal(x.mac.Sum(x.sum[:0]), x.sig[:]) {
		return nil, errTokenSignature
	}

	enc := token[dot1+1 : dot2]
	n := base64.RawURLEncoding.DecodedLen(len(enc))
	if cap(x.buf) < n {
		x.buf = make([]byte, n)
	}
	n, err := base64.RawURLEncoding.Decode(x.buf[:n], []byte(enc))
	if err != nil {
		return nil, errTokenMalformed
	}
	payload := x.buf[:n]
	c := new(Claims)
	if !parseClaims(payload, c) {
		// Correctly signed, but in a form the fast decoder does not take (escaped strings,
		// other claims such as nbf): let golang-jwt decode and validate all of it.
		return nil, errNotFastPath
	}
	if c.ExpiresAt == 0 || now.Unix() >= c.ExpiresAt {
		return nil, errTokenExpired
	}
	return c, nil
}

// parseClaims decodes a claims object made only of the known claims, with strings free of
// escapes and integer times. It reports false for anything else, and the caller falls back.
func parseClaims(b []byte, c *Claims) bool {
	p := claimParser{b: b}
	if !p.byte('{') {
		return false
	}
	if p.peek('}') {
		return p.i+1 == len(b)
	}
	for {
		key, ok := p.str()
		if !ok || !p.byte(':') {
			return false
		}
		switch key {
		case "tid":
			c.TokenID, ok = p.str()
		case "uid":
			c.UserID, ok = p.str()
		case "usn":
			c.Username, ok = p.str()
		case "exp":
			c.ExpiresAt, ok = p.int()
		case "iat":
			c.IssuedAt, ok = p.int()
		case "vrs":
			c.Vars, ok = p.vars()
		default:
			return false
		}
		if !ok {
			return false
		}
		if p.byte('}') {
			return p.i == len(b)
		}
		if !p.byte(',') {
			return false
		}
	}
}

type claimParser struct {
	b []byte
	i int
}

func (p *claimParser) peek(c byte) bool { return p.i < len(p.b) && p.b[p.i] == c }

func (p *claimParser) byte(c byte) bool {
	if p.peek(c) {
		p.i++
		return true
	}
	return false
}

// str reads a string without escapes or control bytes, in valid UTF-8 (encoding/json would
// replace invalid sequences, which the fast path leaves to it).
func (p *claimParser) str() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	ascii := true
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			raw := p.b[start:p.i]
			if !ascii && !utf8.Valid(raw) {
				return "", false
			}
			p.i++
			return string(raw), true
		case c == '\\' || c < ' ':
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.i++
	}
	return "", false
}

// int reads a JSON integer: -?(0|[1-9][0-9]*). Fractions and exponents are left to the
// general parser.
func (p *claimParser) int() (int64, bool) {
	start := p.i
	p.byte('-')
	switch {
	case p.byte('0'):
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
		}
	default:
		return 0, false
	}
	v, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
	return v, err == nil
}

func (p *claimParser) vars() (map[string]string, bool) {
	if p.i+4 <= len(p.b) && string(p.b[p.i:p.i+4]) == "null" {
		p.i += 4
		return nil, true
	}
	if !p.byte('{') {
		return nil, false
	}
	m := make(map[string]string)
	if p.byte('}') {
		return m, true
	}
	for {
		k, ok := p.str()
		if !ok || !p.byte(':') {
			return nil, false
		}
		v, ok := p.str()
		if !ok {
			return nil, false
		}
		m[k] = v
		if p.byte('}') {
			return m, true
		}
		if !p.byte(',') {
			return nil, false
		}
	}
}
