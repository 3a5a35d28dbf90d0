package daemon

import (
	"cmcd/internal/syncbuf"
	"crypto/tls"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

type syncBuf = syncbuf.Buffer

// TestRedfishListeners starts the daemon on loopback with ephemeral ports:
// TLS by default, plain HTTP only with InsecureHTTP; the initial admin's
// password file and the certificate are created in the data directory.
func TestRedfishListeners(t *testing.T) {
	c := Defaults()
	c.Data = t.TempDir()
	c.Redfish = "127.0.0.1:0"
	c.InsecureHTTP = "127.0.0.1:0"
	c.IPMI, c.NTP = "", ""
	c.Sim.Nodes = 2
	logs := runDaemon(t, c, slog.LevelInfo)
	re := regexp.MustCompile(`url=(https?://\S+)`)
	var urls []string
	for deadline := time.Now().Add(10 * time.Second); len(urls) < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		urls = nil
		for _, m := range re.FindAllStringSubmatch(logs.String(), -1) {
			urls = append(urls, m[1])
		}
	}
	if len(urls) != 2 || !strings.HasPrefix(urls[0], "https://") || !strings.HasPrefix(urls[1], "http://") {
		t.Fatalf("listeners: %v\n%s", urls, logs.String())
	}
	pw, err := os.ReadFile(filepath.Join(c.Data, "initial-admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(c.Data, "redfish-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("TLS key: %v", err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, u := range urls {
		req, _ := http.NewRequest("GET", u+"Chassis", nil)
		req.SetBasicAuth("admin", strings.TrimSpace(string(pw)))
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("%s: %s", u, res.Status)
		}
	}
}
