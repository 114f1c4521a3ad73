package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the JWT claims of session and refresh tokens, named as Nakama names them so its
// client SDKs can read user id, username, vars and expiry from the token.
type Claims struct {
	TokenID   string            `json:"tid"`
	UserID    string            `json:"uid"`
	Username  string            `json:"usn"`
	Vars      map[string]string `json:"vrs,omitempty"`
	ExpiresAt int64             `json:"exp"`
	IssuedAt  int64             `json:"iat"`
}

// The methods below satisfy jwt.Claims, which the parser uses to validate exp.

func (c *Claims) GetExpirationTime() (*jwt.NumericDate, error) {
	if c.ExpiresAt == 0 {
		return nil, nil
	}
	return jwt.NewNumericDate(time.Unix(c.ExpiresAt, 0)), nil
}
func (c *Claims) GetIssuedAt() (*jwt.NumericDate, error)  { return nil, nil }
func (c *Claims) GetNotBefore() (*jwt.NumericDate, error) { return nil, nil }
func (c *Claims) GetIssuer() (string, error)              { return "", nil }
func (c *Claims) GetSubject() (string, error)             { return "", nil }
func (c *Claims) GetAudience() (jwt.ClaimStrings, error)  { return nil, nil }

// signer issues and verifies one kind of token with one HS256 key.
type signer struct {
	key     []byte
	expiry  time.Duration
	parser  *jwt.Parser
	scratch *scratchPool
}

func newSigner(key string, expiry time.Duration) *signer {
	return &signer{
		key:    []byte(key),
		expiry: expiry,
		// Only HS256, and exp is required: a token without expiry would live forever.
		parser:  jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()),
		scratch: newScratchPool([]byte(key)),
	}
}

func (s *signer) sign(c *Claims) (string, error) {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("failed to sign token: %w", err)
	}
	return tok, nil
}

var errTokenClaims = errors.New("token claims incomplete")

// verify checks signature, algorithm and expiry, and that the claims name a token and a user.
func (s *signer) verify(token string, now time.Time) (*Claims, error) {
	c, err := s.verifyFast(token, now)
	if errors.Is(err, errNotFastPath) {
		c = new(Claims)
		_, err = s.parser.ParseWithClaims(token, c, func(*jwt.Token) (any, error) { return s.key, nil })
	}
	if err != nil {
		return nil, err
	}
	if c.TokenID == "" || !validUUID(c.UserID) {
		return nil, errTokenClaims
	}
	return c, nil
}

// validUUID reports whether s is a canonical 36-character UUID in lower or upper hex.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
