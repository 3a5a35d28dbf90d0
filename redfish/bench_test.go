package redfish

import (
	"net/http/httptest"
	"testing"
)

// BenchmarkServeGET measures the handler alone (no network, no TLS) for
// the two GETs bench/redfish.sh loads: go test -run '^$' -bench ServeGET ./redfish/
func BenchmarkServeGET(b *testing.B) {
	ft := newFuzzTarget(b)
	for _, p := range []string{"/redfish/v1/Chassis/Enclosure", "/redfish/v1/Chassis/Node1/LogServices/SEL/Entries"} {
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				req := httptest.NewRequest("GET", p, nil)
				req.Header.Set("X-Auth-Token", ft.token)
				ft.srv.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
			}
		})
	}
}
