package firmware

import "fmt"

// Reason names why an image was refused; API layers map it to their own
// messages (Redfish: Update registry / Base messages).
type Reason string

// Refusal reasons.
const (
	ReasonUnsigned     Reason = "unsigned"        // no signature at all
	ReasonUnknownKey   Reason = "unknown-key"     // signed, but by no trusted key
	ReasonBadSignature Reason = "bad-signature"   // a trusted key's signature does not verify
	ReasonTruncated    Reason = "truncated"       // the image ends early
	ReasonWrongProduct Reason = "wrong-product"   // built for another product
	ReasonWrongBoard   Reason = "wrong-board"     // built for another board
	ReasonCorrupt      Reason = "corrupt-payload" // payload digest differs from the manifest's
	ReasonMalformed    Reason = "malformed"       // not an image, bad header or manifest, trailing bytes
	ReasonTooLarge     Reason = "too-large"       // does not fit the slot
)

var reasonText = map[Reason]string{
	ReasonUnsigned:     "the image is not signed",
	ReasonUnknownKey:   "the image is signed by a key this board does not trust",
	ReasonBadSignature: "the image's signature does not verify (the manifest was altered or the signature is damaged)",
	ReasonTruncated:    "the image is truncated",
	ReasonWrongProduct: "the image is for another product",
	ReasonWrongBoard:   "the image is for another board",
	ReasonCorrupt:      "the image's payload is corrupt (its SHA-256 differs from the signed manifest)",
	ReasonMalformed:    "the image is malformed",
	ReasonTooLarge:     "the image does not fit the slot",
}

// RefusedError is an image that failed verification. Nothing on either
// slot has changed when it is returned.
type RefusedError struct {
	Reason Reason
	Detail string
}

func (e *RefusedError) Error() string {
	if e.Detail == "" {
		return "image refused: " + reasonText[e.Reason]
	}
	return "image refused: " + reasonText[e.Reason] + ": " + e.Detail
}

// Is matches the sentinel of the same reason: errors.Is(err, ErrUnsigned).
func (e *RefusedError) Is(target error) bool {
	t, ok := target.(*RefusedError)
	return ok && t.Detail == "" && t.Reason == e.Reason
}

func refuse(r Reason, format string, args ...any) error {
	return &RefusedError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Sentinels for errors.Is.
var (
	ErrUnsigned     = &RefusedError{Reason: ReasonUnsigned}
	ErrUnknownKey   = &RefusedError{Reason: ReasonUnknownKey}
	ErrBadSignature = &RefusedError{Reason: ReasonBadSignature}
	ErrTruncated    = &RefusedError{Reason: ReasonTruncated}
	ErrWrongProduct = &RefusedError{Reason: ReasonWrongProduct}
	ErrWrongBoard   = &RefusedError{Reason: ReasonWrongBoard}
	ErrCorrupt      = &RefusedError{Reason: ReasonCorrupt}
	ErrMalformed    = &RefusedError{Reason: ReasonMalformed}
	ErrTooLarge     = &RefusedError{Reason: ReasonTooLarge}
)
