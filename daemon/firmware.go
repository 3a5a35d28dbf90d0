package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"cmcd/firmware"
	"cmcd/flash"
	"cmcd/internal/version"
)

// FirmwareConfig configures firmware updates (config file key "firmware").
type FirmwareConfig struct {
	// TrustedKeyFiles are PEM ed25519 public keys ("PUBLIC KEY") whose
	// signatures this board accepts (flag --trusted-key, repeatable).
	TrustedKeyFiles []string `json:"trustedKeyFiles"`
	// TrustedKeys are the same, inline: PEM text or 32 bytes in base64/hex.
	TrustedKeys []string `json:"trustedKeys"`
	// BootLimit is how many boots an activated image gets to report
	// healthy before the boot falls back to the other slot (default 3).
	BootLimit int `json:"bootLimit"`
	// SlotDevices maps "primary"/"backup" to a device such as /dev/mtd4;
	// empty: the files DATA/image-primary.bin and DATA/image-backup.bin
	// (the simulated board's 64 MiB NOR slots).
	SlotDevices map[string]string `json:"slotDevices"`
}

// UnhealthyVersionEnv is a TEST KNOB: when cmcd runs an installed image
// whose version equals this variable's value, its start-up health check
// fails and the daemon exits, as an image that never comes up healthy
// would; the boot counter then falls back after the boot limit. Never set
// it on a board.
const UnhealthyVersionEnv = "CMCD_TEST_UNHEALTHY_VERSION"

// FirmwareOptions turns the configuration into firmware.Options.
func FirmwareOptions(c Config, log *slog.Logger) (firmware.Options, error) {
	keys, err := firmware.LoadKeyRing(c.Firmware.TrustedKeyFiles, c.Firmware.TrustedKeys)
	if err != nil {
		return firmware.Options{}, err
	}
	devs := map[flash.Slot]string{}
	for name, path := range c.Firmware.SlotDevices {
		s, err := flash.ParseSlot(name)
		if err != nil {
			return firmware.Options{}, fmt.Errorf("firmware.slotDevices: %w", err)
		}
		devs[s] = path
	}
	return firmware.Options{Areas: flash.Areas{Root: c.Data}, Devices: devs, Keys: keys, Board: c.Board,
		BootLimit: c.Firmware.BootLimit, Builtin: version.Version, Log: log}, nil
}

// openFirmware opens the firmware service and plays the boot (boot counter,
// trial, fallback) before anything opens the data areas.
func openFirmware(c Config, log *slog.Logger) (*firmware.Service, error) {
	o, err := FirmwareOptions(c, log)
	if err != nil {
		return nil, err
	}
	if o.Keys.Len() == 0 {
		log.Warn("firmware: no trusted keys configured (--trusted-key or firmware.trustedKeyFiles): every image upload will be refused")
	}
	fw, err := firmware.Open(o)
	if err != nil {
		return nil, err
	}
	if _, err := fw.Boot(); err != nil {
		fw.Close()
		return nil, err
	}
	r := fw.Running()
	log.Info("firmware image running", "slot", r.Slot, "version", r.Version, "installed", r.Installed)
	return fw, nil
}

// reportHealth runs the start-up health check once the services are up:
// the running data store answers a read. When it passes, the firmware
// service confirms an image on trial (and offers the S5 choice after an
// upgrade). When it fails the daemon stops with an error, as a watchdog
// would reset the board, and the boot counter decides at the next start.
func reportHealth(fw *firmware.Service, storePath string, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := (flash.AreaProber{Path: storePath}).Probe(ctx); err != nil {
		return fmt.Errorf("start-up health check failed: %w", err)
	}
	r := fw.Running()
	if v := os.Getenv(UnhealthyVersionEnv); v != "" && r.Installed && r.Version == v {
		return fmt.Errorf("start-up health check failed: test knob %s=%s makes image %s unhealthy (the boot counter falls back after %d boots)",
			UnhealthyVersionEnv, v, r.Version, fw.BootLimit())
	}
	if _, err := fw.ReportHealthy(); err != nil {
		return err
	}
	log.Info("start-up health check passed; reported healthy", "slot", r.Slot, "version", r.Version)
	return nil
}
