// Package fru reads and writes IPMI FRU data: the "Platform Management FRU
// Information Storage Definition" v1.0 (rev 1.3) format that FRU EEPROMs of
// chassis, power supplies, fans and node boards hold, and that IPMI's Read
// FRU Data returns.
//
// Parse decodes the common header, the internal-use area, the chassis,
// board and product info areas and the multi-record area; Encode writes
// them back. Fields keep the bytes as stored, with their type: 8-bit text
// (ASCII/Latin-1), 6-bit packed ASCII, BCD plus or binary, so an image
// parsed and encoded again is the same image (tested byte for byte).
//
// A bad checksum is reported, never trusted: a common header whose checksum
// is wrong makes Parse fail; an info area or multi-record whose checksum is
// wrong (or whose length runs past the image) is left out of the result and
// listed in Info.Problems, while the other areas are still decoded.
//
// ToBoard and FromBoard convert to and from board.FRU, the inventory the
// rest of cmcd keeps.
package fru
