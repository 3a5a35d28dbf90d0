package earlyboot

import "strings"

// Cmdline holds the key=value words of a kernel command line that start
// with prefix (e.g. "cmcinit."), the prefix removed. A word without '='
// has the value "1".
func Cmdline(line, prefix string) map[string]string {
	out := map[string]string{}
	for _, w := range strings.Fields(line) {
		if !strings.HasPrefix(w, prefix) {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(w, prefix), "=")
		if !ok {
			v = "1"
		}
		out[k] = v
	}
	return out
}

// ModuleOrder parses a module load-order file: one module file name per
// line, '#' comments and blank lines ignored, each optionally followed by
// its parameters ("ubi.ko mtd=rwfs").
func ModuleOrder(text string) []ModuleLoad {
	var out []ModuleLoad
	for _, l := range strings.Split(text, "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		file, params, _ := strings.Cut(l, " ")
		out = append(out, ModuleLoad{File: file, Params: strings.TrimSpace(params)})
	}
	return out
}

// ModuleLoad is one module to load: its file (relative to the module
// directory) and its parameters.
type ModuleLoad struct {
	File   string
	Params string
}
