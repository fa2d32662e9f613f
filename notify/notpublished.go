package notify

import (
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotPublished marks a publish that certainly reached no stream: it failed
// before anything was sent (bad input, no delivery key, the connection already
// closed, draining or its reconnect buffer full), or JetStream answered that no
// stream took it. A caller may then take back what it reserved for the message
// (a push pending, a send counted toward a daily cap). A publish that fails
// otherwise (its acknowledgement timed out, the context ended, the connection
// dropped or closed while it waited) is not marked: the message may be stored,
// or wait in the client's reconnect buffer and be sent once NATS is back, so
// what was reserved for it must stay.
var ErrNotPublished = errors.New("notify: not published")

// NotPublished tells whether err says a publish certainly reached no stream.
func NotPublished(err error) bool { return errors.Is(err, ErrNotPublished) }

// markUnpublished wraps err with ErrNotPublished when it proves that nothing
// was stored; other errors are returned as they are.
func markUnpublished(err error) error {
	if err == nil || NotPublished(err) {
		return err
	}
	var api *jetstream.APIError
	// Not nats.ErrConnectionClosed: a request sent and then cut off by the
	// close returns it too (Publisher.publish tells a connection closed before).
	switch {
	case errors.Is(err, nats.ErrInvalidConnection),
		errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrBadSubject),
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, ErrNotConnected),
		errors.As(err, &api): // the stream answered with a refusal: nothing stored
		return unpublished(err)
	}
	return err
}

// unpublished wraps err, which happened before anything was sent, with
// ErrNotPublished; its message stays err's.
func unpublished(err error) error { return notPublishedError{err} }

type notPublishedError struct{ err error }

func (e notPublishedError) Error() string   { return e.err.Error() }
func (e notPublishedError) Unwrap() []error { return []error{ErrNotPublished, e.err} }
