package auth

import (
	"context"
	"errors"
	"strings"

	"github.com/google/uuid"
)

// FindAccounts returns the accounts an operator's query names, for the console's user search:
// the account whose user id, username, device id, custom id or email (compared lowercased) is
// exactly q, each account once, in that order of match. Password hashes are cleared. An empty
// query finds nothing; it fails only when the store does.
func (s *Service) FindAccounts(ctx context.Context, q string) ([]*Account, error) {
	q = strings.TrimSpace(q)
	found := []*Account{}
	if q == "" {
		return found, nil
	}
	seen := map[string]bool{}
	add := func(a *Account, err error) error {
		if errors.Is(err, ErrAccountNotFound) {
			return nil
		}
		if err != nil {
			return internalError("Error finding user account.", err)
		}
		if !seen[a.ID] {
			seen[a.ID] = true
			c := *a
			c.PasswordHash = nil
			found = append(found, &c)
		}
		return nil
	}
	if id, err := uuid.Parse(q); err == nil {
		a, err := s.accounts.Get(ctx, id.String())
		if err := add(a, err); err != nil {
			return nil, err
		}
	}
	a, err := s.accounts.FindByUsername(ctx, q)
	if err := add(a, err); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		provider Provider
		id       string
	}{{ProviderDevice, q}, {ProviderCustom, q}, {ProviderEmail, strings.ToLower(q)}} {
		a, err := s.accounts.FindByIdentity(ctx, p.provider, p.id)
		if err := add(a, err); err != nil {
			return nil, err
		}
	}
	return found, nil
}
