package web_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"cmcd/daemon"
	"cmcd/firmware"
	"cmcd/firmware/firmwaretest"
	"cmcd/flash"
)

// upgraded prepares cmcd's data directory as after an upgrade: image
// 9.0.0 is installed into the backup slot and activated, so the daemon
// boots it on trial, it reports healthy and the keep-or-restore choice
// (S5) becomes pending.
func upgraded(t *testing.T) func(*daemon.Config) {
	return func(c *daemon.Config) {
		k := firmwaretest.New(t)
		c.Firmware.TrustedKeys = []string{string(k.PubPEM)}
		o, err := daemon.FirmwareOptions(*c, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		fw, err := firmware.Open(o)
		if err != nil {
			t.Fatal(err)
		}
		defer fw.Close()
		if _, err := fw.Boot(); err != nil {
			t.Fatal(err)
		}
		if _, err := fw.InstallFile(context.Background(), k.Signed("9.0.0", c.Board, 60_000, nil), nil); err != nil {
			t.Fatal(err)
		}
		if err := fw.Activate(flash.Backup); err != nil {
			t.Fatal(err)
		}
	}
}

func (p *page) dataChoice() map[string]any { return p.managerOem("DataChoice") }

// TestDataChoicePrompt is S5 on the page: after an upgrade the page shows
// the keep-or-restore prompt naming the new version; the operator answers
// "Keep" with the keyboard alone (Tab to the button, Enter); the prompt
// disappears and the API shows the choice answered by admin.
func TestDataChoicePrompt(t *testing.T) {
	p := start(t, 1280, 900, upgraded(t))
	if dc := p.dataChoice(); dc["Pending"] != true || dc["Version"] != "9.0.0" {
		t.Fatalf("DataChoice before: %v", dc)
	}
	p.login()
	p.run(chromedp.WaitVisible("#datachoice", chromedp.ByID))
	if txt := p.text("#dc-text"); !strings.Contains(txt, "9.0.0") {
		t.Fatalf("prompt text %q", txt)
	}
	p.shot("10-datachoice-prompt.png")
	p.tabTo("dc-keep")
	p.run(chromedp.KeyEvent(kb("Enter")))
	p.run(chromedp.WaitNotVisible("#datachoice", chromedp.ByID))
	p.waitText("#status", "kept")
	p.shot("11-datachoice-answered.png")
	if dc := p.dataChoice(); dc["Pending"] != false || dc["Answer"] != "Keep" || dc["AnsweredBy"] != "admin" {
		t.Fatalf("DataChoice after: %v", dc)
	}
}
