package auth

import "time"

// Provider names an identity kind an account can be found by.
type Provider string

// The identity providers this gateway authenticates.
const (
	ProviderDevice Provider = "device"
	ProviderCustom Provider = "custom"
	ProviderEmail  Provider = "email"
)

// Account is a user's stored record. PasswordHash is a bcrypt hash and never leaves the
// package's API responses.
type Account struct {
	ID           string    `json:"id"`
	Username     string    `json:"username"`
	DeviceIDs    []string  `json:"device_ids,omitempty"`
	CustomID     string    `json:"custom_id,omitempty"`
	Email        string    `json:"email,omitempty"`
	PasswordHash []byte    `json:"password_hash,omitempty"`
	CreateTime   time.Time `json:"create_time"`
	UpdateTime   time.Time `json:"update_time"`
}

// identity returns the account's identity for provider p, the key Create indexes it under.
func (a *Account) identity(p Provider) string {
	switch p {
	case ProviderDevice:
		if len(a.DeviceIDs) > 0 {
			return a.DeviceIDs[0]
		}
	case ProviderCustom:
		return a.CustomID
	case ProviderEmail:
		return a.Email
	}
	return ""
}
