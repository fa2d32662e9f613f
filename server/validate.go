package server

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// The validators of the fields many requests share; the request-specific ones
// are next to their handlers (checkBegin, checkVerify, checkChallengeID, checkGroup…).

const maxUserIDLen = 255

// checkUserID validates a backend user id: 1 to 255 bytes of printable UTF-8
// (no C0 or C1 control character: the providers' userid.Check).
func checkUserID(field, id string) error {
	switch {
	case id == "":
		return invalid(field, "is required")
	case len(id) > maxUserIDLen:
		return invalid(field, "is longer than %d bytes", maxUserIDLen)
	case !utf8.ValidString(id):
		return invalid(field, "is not valid UTF-8")
	}
	if strings.IndexFunc(id, unicode.IsControl) >= 0 {
		return invalid(field, "contains control characters")
	}
	return nil
}

// checkID validates an id this service issued (a UUID).
func checkID(field, id string) error {
	if id == "" {
		return invalid(field, "is required")
	}
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return invalid(field, "is not a valid id")
	}
	return nil
}

// checkName validates a user-given display name: 1 to 128 characters, printable
// (no C0 or C1 control character, as the providers that store names check).
func checkName(field, name string, required bool) error {
	if name == "" {
		if required {
			return invalid(field, "is required")
		}
		return nil
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > 128 {
		return invalid(field, "must be valid UTF-8 of at most 128 characters")
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return invalid(field, "contains control characters")
	}
	return nil
}

// checkIP validates an optional client IP: an address whose zone, if any, is at
// most MaxIPZoneLen bytes, MaxIPLen in all (CheckClientIP).
func checkIP(field, ip string) error {
	if ip == "" {
		return nil
	}
	if err := CheckClientIP(ip); err != nil {
		return invalid(field, "%v", err)
	}
	return nil
}
