package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"cmcd/daemon"
)

// chromium is Debian's browser, installed by make test.
const chromium = "/usr/bin/chromium"

// page is a running cmcd with its page, and a browser tab on it.
type page struct {
	t    *testing.T
	base string // http://127.0.0.1:PORT
	pw   string // the generated admin password
	ctx  context.Context
	art  string // artifact folder for screenshots
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// artifacts is where screenshots go: $CMCD_ARTIFACTS or bin/test-artifacts
// of the checkout.
func artifacts(t *testing.T) string {
	dir := os.Getenv("CMCD_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "bin", "test-artifacts")
	}
	dir = filepath.Join(dir, "web")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// start runs cmcd (after prep, if given, changed its configuration or
// prepared its data directory) and a browser tab.
func start(t *testing.T, width, height int64, prep ...func(*daemon.Config)) *page {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s: %v (make test installs Debian's chromium)", chromium, err)
	}
	c := daemon.Defaults()
	c.Data = t.TempDir()
	c.Redfish = "127.0.0.1:0"
	addr := freePort(t)
	c.InsecureHTTP = addr
	c.IPMI, c.NTP = "", ""
	c.Sim.Nodes = 2
	c.SyncInterval = "1h" // rounds only when the test asks
	for _, f := range prep {
		f(&c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, c, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	p := &page{t: t, base: "http://" + addr, art: artifacts(t)}
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(c.Data, "initial-admin-password"))
		if err == nil {
			if res, err := http.Get(p.base + "/ui/"); err == nil {
				res.Body.Close()
				if res.StatusCode == 200 {
					p.pw = strings.TrimSpace(string(b))
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("cmcd did not start serving /ui/")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Chromium's helper processes may still write into its profile for a
	// moment after the browser is stopped: remove it with retries, after
	// the browser's own clean-up (clean-ups run last-registered first).
	profile, err := os.MkdirTemp("", "cmcd-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; ; i++ {
			err := os.RemoveAll(profile)
			if err == nil {
				return
			}
			if i == 50 {
				t.Errorf("removing the browser profile: %v", err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(int(width), int(height)),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	tctx, tcancel := context.WithTimeout(bctx, 90*time.Second)
	t.Cleanup(func() {
		_ = chromedp.Cancel(bctx) // closes the browser gracefully
		tcancel()
		bcancel()
		acancel()
	})
	p.ctx = tctx
	chromedp.ListenTarget(tctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			t.Errorf("page exception: %s", ev.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			t.Logf("console.%s: %s", ev.Type, strings.Join(args, " "))
		}
	})
	p.run(emulation.SetDeviceMetricsOverride(width, height, 1, width < 500))
	return p
}

func (p *page) run(actions ...chromedp.Action) {
	p.t.Helper()
	if err := chromedp.Run(p.ctx, actions...); err != nil {
		p.t.Fatal(err)
	}
}

func (p *page) shot(name string) {
	p.t.Helper()
	var png []byte
	p.run(chromedp.FullScreenshot(&png, 100))
	path := filepath.Join(p.art, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot %s", path)
}

// managerOem reads the Manager's Oem.Cmcd section named key over the API,
// as the reference the page is checked against.
func (p *page) managerOem(key string) map[string]any {
	p.t.Helper()
	req, _ := http.NewRequest("GET", p.base+"/redfish/v1/Managers/CMC", nil)
	req.SetBasicAuth("admin", p.pw)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer res.Body.Close()
	var m struct {
		Oem struct{ Cmcd map[string]map[string]any }
	}
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		p.t.Fatal(err)
	}
	return m.Oem.Cmcd[key]
}

// sync reads the Manager's Oem.Cmcd.Sync.
func (p *page) sync() map[string]any { return p.managerOem("Sync") }

func (p *page) explanation(name string) string {
	for _, o := range p.sync()["SelectionModel"].([]any) {
		o := o.(map[string]any)
		if o["Name"] == name {
			return o["Explanation"].(string)
		}
	}
	p.t.Fatalf("no option %s in the model", name)
	return ""
}

func (p *page) text(sel string) string {
	p.t.Helper()
	var s string
	p.run(chromedp.Text(sel, &s, chromedp.ByQuery))
	return s
}

func (p *page) eval(js string, out any) {
	p.t.Helper()
	p.run(chromedp.Evaluate(js, out))
}

// waitText waits until sel's text contains want.
func (p *page) waitText(sel, want string) {
	p.t.Helper()
	js := fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel)
	deadline := time.Now().Add(30 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		p.eval(js, &got)
		if strings.Contains(got, want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	var status, errText string
	p.eval(`document.getElementById("status").textContent + ""`, &status)
	p.eval(`document.getElementById("error").textContent + ""`, &errText)
	p.t.Fatalf("%s: text %q never contained %q (status %q, error %q)", sel, got, want, status, errText)
}

func (p *page) login() {
	p.t.Helper()
	p.run(
		chromedp.Navigate(p.base+"/ui/"),
		chromedp.WaitVisible("#username", chromedp.ByID),
		chromedp.SendKeys("#username", "admin", chromedp.ByID),
		chromedp.SendKeys("#password", p.pw, chromedp.ByID),
		chromedp.Click(`#login-form button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#app-view", chromedp.ByID),
		chromedp.WaitVisible("#opt-category-psu", chromedp.ByID),
	)
}

// tabTo presses Tab until the element with id has the focus.
func (p *page) tabTo(id string) {
	p.t.Helper()
	var active string
	for range 80 {
		p.eval(`document.activeElement ? document.activeElement.id : ""`, &active)
		if active == id {
			return
		}
		p.run(chromedp.KeyEvent(kb("Tab")))
	}
	p.t.Fatalf("Tab never reached #%s (stuck at #%s)", id, active)
}

func kb(key string) string {
	switch key {
	case "Tab":
		return "\t"
	case "Enter":
		return "\r"
	}
	return key
}

// TestSelectionPage is W and S2 in a real browser: log in, see an
// option's explanation on focus and on click, untick a category and save
// with the keyboard alone, get the engine's validation message for a bad
// value with nothing changed, run a round and see it committed.
func TestSelectionPage(t *testing.T) {
	p := start(t, 1280, 900)
	p.login()
	p.shot("01-logged-in.png")

	// Click: the explanation area shows the option's explanation (a
	// click on a label ticks its box too, as labels do: click twice).
	for range 2 {
		p.run(chromedp.Click(`label[for="opt-category-sel"]`, chromedp.ByQuery))
		if got, want := p.text("#explain-text"), p.explanation("category.sel"); got != want {
			t.Fatalf("after a click on the SEL option the explanation area shows %q, want %q", got, want)
		}
	}
	p.run(chromedp.Click(`label[for="opt-probeTimeout"]`, chromedp.ByQuery))
	if got, want := p.text("#explain-text"), p.explanation("probeTimeout"); got != want {
		t.Fatalf("after a click on the probe timeout the explanation area shows %q, want %q", got, want)
	}

	// Keyboard alone: Tab to the fault-log box (focus shows its
	// explanation), Space unticks it, Tab to Save, Enter saves.
	p.run(chromedp.Focus("#main", chromedp.ByID))
	p.tabTo("opt-category-fault")
	if got, want := p.text("#explain-text"), p.explanation("category.fault"); got != want {
		t.Fatalf("focusing the fault option shows %q, want %q", got, want)
	}
	p.run(chromedp.KeyEvent(" "))
	var checked bool
	p.eval(`document.getElementById("opt-category-fault").checked`, &checked)
	if checked {
		t.Fatal("Space did not untick the fault category")
	}
	p.tabTo("save")
	p.run(chromedp.KeyEvent(kb("Enter")))
	p.waitText("#status", "Saved: category.fault")
	if v := p.sync()["Configuration"].(map[string]any)["category.fault"]; v != false {
		t.Fatalf("after saving, the service has category.fault = %v", v)
	}
	p.shot("02-saved.png")

	// A value outside the allowed range: the engine's message, nothing
	// changed.
	before := p.sync()["Configuration"]
	p.run(
		chromedp.Evaluate(`document.getElementById("opt-interval").value = ""`, nil),
		chromedp.SendKeys("#opt-interval", "1ms", chromedp.ByID),
		chromedp.Click("#save", chromedp.ByID),
	)
	p.waitText("#error", "interval")
	if after := p.sync()["Configuration"]; fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a refused PATCH changed the configuration:\nbefore %v\nafter  %v", before, after)
	}
	t.Logf("refusal shown: %q", p.text("#error"))
	p.shot("03-refused.png")
	p.run(chromedp.Click("#reset", chromedp.ByID))

	// Sync now: the round is committed and listed.
	p.run(chromedp.Click("#syncnow", chromedp.ByID))
	p.waitText("#status", "committed")
	hist := p.sync()["RoundHistory"].([]any)
	if len(hist) == 0 {
		t.Fatal("no round in the history after Sync now")
	}
	id := fmt.Sprint(hist[0].(map[string]any)["id"])
	p.waitText("#rounds tbody", id)
	if !strings.Contains(p.text("#status"), "Round "+id+" committed") {
		t.Fatalf("status %q does not name round %s", p.text("#status"), id)
	}
	p.shot("04-round.png")

	// Log out: the session is deleted, the page is back at the log-in.
	p.run(chromedp.Click("#logout", chromedp.ByID), chromedp.WaitVisible("#login-view", chromedp.ByID))
}

// TestSelectionPageNarrow is the page at a 390 px wide viewport: no
// horizontal scrolling, the explanation area below the options, every
// control reachable.
func TestSelectionPageNarrow(t *testing.T) {
	p := start(t, 390, 844)
	p.login()
	var overflow bool
	p.eval(`document.documentElement.scrollWidth > window.innerWidth + 1`, &overflow)
	if overflow {
		var w int
		p.eval(`document.documentElement.scrollWidth`, &w)
		t.Fatalf("the page scrolls sideways at 390 px (scrollWidth %d)", w)
	}
	var below bool
	p.eval(`document.getElementById("explain").getBoundingClientRect().top >= document.getElementById("options").getBoundingClientRect().bottom`, &below)
	if !below {
		t.Fatal("at 390 px the explanation area should stack below the options")
	}
	p.run(chromedp.Click(`label[for="opt-interval"]`, chromedp.ByQuery))
	if got, want := p.text("#explain-text"), p.explanation("interval"); got != want {
		t.Fatalf("explanation %q, want %q", got, want)
	}
	p.shot("05-narrow-390px.png")
}

// TestWrongPassword: a refused log-in says so and shows no data.
func TestWrongPassword(t *testing.T) {
	p := start(t, 1024, 768)
	p.run(
		chromedp.Navigate(p.base+"/ui/"),
		chromedp.WaitVisible("#username", chromedp.ByID),
		chromedp.SendKeys("#username", "admin", chromedp.ByID),
		chromedp.SendKeys("#password", "not-the-password", chromedp.ByID),
		chromedp.Click(`#login-form button[type="submit"]`, chromedp.ByQuery),
	)
	p.waitText("#error", "Log-in failed")
	var hidden bool
	p.eval(`document.getElementById("app-view").hidden`, &hidden)
	if !hidden {
		t.Fatal("the app view is visible after a failed log-in")
	}
}
