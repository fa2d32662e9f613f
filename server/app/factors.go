package app

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/pquerna/otp"

	"github.com/twofactor/twofactor/notify/channels/webpush"
	"github.com/twofactor/twofactor/providers/admincodes"
	"github.com/twofactor/twofactor/providers/backupcodes"
	"github.com/twofactor/twofactor/providers/policy"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/providers/webauthn"
	"github.com/twofactor/twofactor/server"
)

// buildFactors builds the factors' providers, registers one server.Factor for
// each (docs/ARCHITECTURE.md, "How to add a factor": a new factor is one more
// provider here and one more entry in the NewRegistry call), and the policy
// that lists them.
func (a *App) buildFactors(d *server.Deps) error {
	ring := d.Keys
	alg, err := totp.ParseAlgorithm(a.cfg.TOTPAlgorithm)
	if err != nil {
		return err
	}
	tp, err := totp.New(a.store, ring, totp.Config{
		Issuer: a.cfg.TOTPIssuer, Algorithm: alg, Digits: otp.Digits(a.cfg.TOTPDigits),
		Period: uint(a.cfg.TOTPPeriod), Skew: uint(a.cfg.TOTPSkew), SkewSet: true,
	}, nil, nil)
	if err != nil {
		return err
	}
	// The WebAuthn provider reads the policy, which is built from the registry
	// that holds the WebAuthn factor: it gets the policy once it exists.
	polRef := &server.PolicyRef{}
	wa, err := webauthn.New(a.store, webauthn.Config{
		RPID: a.cfg.WebAuthnRPID, RPDisplayName: a.cfg.WebAuthnRPName, RPOrigins: splitList(a.cfg.WebAuthnOrigins),
		UserVerification: a.cfg.WebAuthnUV,
	}, polRef, nil, nil)
	if err != nil {
		return fmt.Errorf("webauthn: %w", err)
	}
	d.WebAuthn = wa
	d.BackupCodes = backupcodes.New(a.store, ring, backupcodes.Options{})
	d.AdminCodes = admincodes.New(a.store, ring, admincodes.Options{})
	codes, err := a.otpCodeFactors(d)
	if err != nil {
		return fmt.Errorf("otpcode: %w", err)
	}
	vapid, err := vapidPublicKey(a.cfg.VAPIDKeyFile)
	if err != nil {
		return err
	}
	if d.Push, err = push.New(a.store, ring, push.Config{NumberMode: a.cfg.PushNumberMode, Digits: a.cfg.PushDigits,
		DailyCap: a.cfg.PushDailyCap, LockOnNotMe: a.cfg.PushLockOnNotMe, EndpointHosts: splitList(a.cfg.PushEndpointHosts),
		HTTPEndpointHosts: splitList(a.cfg.PushHTTPEndpointHosts), AllowInternal: a.cfg.pushEnrollAllow(),
		AllowHTTP: a.cfg.pushAllowHTTP, VAPIDPublicKey: vapid}); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	var pub server.PushPublisher
	if a.events != nil {
		pub = a.events
		d.PushWatcher = server.NATSPushWatcher{Conn: a.nc, Subject: a.events.Names().PushRequest()}
	}
	if d.Factors, err = server.NewRegistry(append([]server.Factor{
		server.TOTPFactor(tp),
		server.WebAuthnFactor(wa),
		server.BackupCodeFactor(d.BackupCodes),
		server.AdminCodeFactor(d.AdminCodes),
		server.PushFactor(d.Push, pub),
	}, codes...)...); err != nil {
		return err
	}
	d.Policy, err = policy.New(a.store, policy.Options{Methods: d.Factors.PolicyMethods(),
		AdminGroups: splitList(a.cfg.AdminGroups), CacheTTL: a.cfg.PolicyCacheTTL})
	if err != nil {
		return err
	}
	polRef.Set(d.Policy)
	return nil
}

// vapidPublicKey is the public half of the VAPID key file that `authd init`
// writes (and notifyd signs Web Push with), given to enrolling devices; "" when
// there is no file (Web Push devices then poll).
func vapidPublicKey(path string) (string, error) {
	_, pub, err := webpush.LoadVAPIDKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("vapid-key-file: %w", err)
	}
	return pub, nil
}
