package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"

	"github.com/twofactor/twofactor/notify/channels/ntfy"
	"github.com/twofactor/twofactor/notify/channels/webpush"
	"github.com/twofactor/twofactor/notify/egress"
	"github.com/twofactor/twofactor/notify/pushdelivery"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/storage"
)

// PushSenders builds the push transports from a VAPID key file and subscriber: Web
// Push when both are there (else nil, with a warning: Web Push devices then poll),
// and ntfy / UnifiedPush, which needs no setting. Both send with client, which
// should be notify/egress's (PushClient); nil is egress's client allowing nothing
// but public addresses.
func PushSenders(vapidKeyFile, subscriber string, client *http.Client, log *slog.Logger) (*webpush.Sender, *ntfy.Sender, error) {
	if client == nil {
		client = PushClient(egress.Allow{}, nil)
	}
	nt := ntfy.New(ntfy.Config{HTTPClient: client})
	priv, pub, err := webpush.LoadVAPIDKeyFile(vapidKeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		log.Warn("no VAPID key file: Web Push devices are not woken and poll (`authd init` writes it)", "path", vapidKeyFile)
		return nil, nt, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if subscriber == "" {
		log.Warn("vapid-subscriber is not set: Web Push devices are not woken and poll")
		return nil, nt, nil
	}
	// webpush-go adds "mailto:" to what is not an https URL.
	subscriber = strings.TrimPrefix(subscriber, "mailto:")
	wp, err := webpush.New(webpush.Config{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subscriber: subscriber, HTTPClient: client})
	if err != nil {
		return nil, nil, fmt.Errorf("vapid-key-file: %w", err)
	}
	return wp, nt, nil
}

// PushClient is the client push wake-ups are sent with: notify/egress's, reaching
// public unicast addresses and what allow names (push-allow-internal), following no
// redirect, using no proxy. tlsConfig nil is the system's roots (tests: a push
// service's certificate).
func PushClient(allow egress.Allow, tlsConfig *tls.Config) *http.Client {
	return egress.NewClient(egress.Config{Allow: allow, TLS: tlsConfig})
}

// PushDeps opens what the push worker needs when database-url is set: authd's store
// (read for the devices' endpoints, written only to retire a gone one), the key ring
// that seals the endpoints, and the transports. It returns nil deps when push
// delivery is off; close releases the store.
func (c *Config) PushDeps(ctx context.Context, log *slog.Logger) (_ *pushdelivery.Deps, closeFn func(), err error) {
	if c.DatabaseURL == "" {
		log.Info("push delivery off: database-url is not set")
		return nil, func() {}, nil
	}
	ring, err := storage.LoadKeyRing(c.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("key-file: %w", err)
	}
	wp, nt, err := PushSenders(c.VAPIDKeyFile, c.VAPIDSubscriber, PushClient(c.PushAllow, nil), log)
	if err != nil {
		return nil, nil, err
	}
	store, err := storage.Open(ctx, c.DatabaseURL, storage.Options{MaxOpenConns: 4})
	if err != nil {
		return nil, nil, fmt.Errorf("database-url: %w", err)
	}
	svc, err := push.New(store, ring, push.Config{})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return &pushdelivery.Deps{Push: svc, WebPush: wp, Ntfy: nt, Logger: log.With("component", "push")},
		func() { store.Close() }, nil
}
