// Package firmware is the CMC's firmware update service (SPEC Part F and
// S5): the signed image format, its verification, and the upgrade flow on
// top of package flash's slots and boot state.
//
//   - format.go, manifest.go: an image is a fixed header, a JSON manifest
//     (product, board, version, build time, payload SHA-256 and size), up
//     to eight ed25519 signatures over the manifest bytes, then the
//     payload. Verification streams: the header and signature are checked
//     before a payload byte is read, the payload is hashed on the way
//     through, never held in memory.
//   - keys.go: PEM keys (PKCS#8 / PKIX, as openssl writes them) and the
//     board's trusted key ring (files and inline keys from the config).
//   - errors.go: every refusal is a *RefusedError whose Reason says which
//     check failed (unsigned, unknown key, bad signature, truncated, wrong
//     product or board, corrupt payload, malformed, too large); nothing on
//     either slot changes when an image is refused.
//   - service.go: Service installs a verified image into the inactive slot
//     only (marked "installing" durably first, so a cut write is found and
//     the slot marked bad), reads it back and verifies it, marks it
//     pending; Activate selects the slot to boot next; Boot and
//     ReportHealthy drive the boot counter (flash.SimImages.Boot): an
//     activated image boots on trial and falls back to the other slot when
//     it has not reported healthy within BootLimit boots.
//   - choice.go: after an upgraded image reports healthy the
//     keep-or-restore choice (S5) is pending until answered; the answer is
//     journaled (applying -> done) and applied through the sync engine.
//
// The service has no HTTP in it; Redfish's UpdateService, TaskService,
// ActiveSoftwareImage and the S5 OEM action are layered on its methods.
package firmware
