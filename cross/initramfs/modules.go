package initramfs

import (
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Module is a kernel module file found under a modules tree.
type Module struct {
	Name    string   // canonical name: '-' written as '_'
	Path    string   // file on the host
	Depends []string // canonical names from .modinfo depends=
}

// ModName is the kernel's canonical module name for a file or module name:
// without directory and ".ko", '-' replaced by '_'.
func ModName(s string) string {
	s = strings.TrimSuffix(filepath.Base(s), ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// Index finds every .ko file under root (e.g. a lib/modules/VERSION
// directory) by canonical name.
func Index(root string) (map[string]string, error) {
	idx := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".ko") {
			idx[ModName(p)] = p
		}
		return nil
	})
	return idx, err
}

// ReadModinfo returns the key=value pairs of a module's .modinfo section
// (a key that repeats, such as alias, keeps its last value).
func ReadModinfo(path string) (map[string]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("module %s: no .modinfo section", path)
	}
	b, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("module %s: .modinfo: %w", path, err)
	}
	info := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			info[k] = v
		}
	}
	return info, nil
}

// Resolve returns the modules named in want and everything they depend
// on, in an order in which each module comes after its dependencies and
// the wanted modules keep their relative order. Names not found in idx are
// errors (a module the kernel has built in is simply not wanted).
func Resolve(idx map[string]string, want []string) ([]Module, error) {
	var out []Module
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		switch state[name] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("module dependency cycle: %s", strings.Join(append(chain, name), " -> "))
		}
		p, ok := idx[name]
		if !ok {
			if len(chain) > 0 {
				return fmt.Errorf("module %s (needed by %s) not found", name, chain[len(chain)-1])
			}
			return fmt.Errorf("module %s not found", name)
		}
		state[name] = 1
		info, err := ReadModinfo(p)
		if err != nil {
			return err
		}
		var deps []string
		for _, d := range strings.Split(info["depends"], ",") {
			if d = strings.TrimSpace(d); d != "" {
				deps = append(deps, ModName(d))
				if err := visit(ModName(d), append(chain, name)); err != nil {
					return err
				}
			}
		}
		state[name] = 2
		out = append(out, Module{Name: name, Path: p, Depends: deps})
		return nil
	}
	for _, w := range want {
		if err := visit(ModName(w), nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// AddModules puts the modules into the archive under dir, flat, with the
// load-order file cmd/cmcinit reads (dir/load-order).
func (a *Archive) AddModules(dir string, mods []Module) error {
	var order strings.Builder
	order.WriteString("# written by cross/initramfs: dependencies first\n")
	for _, m := range mods {
		b, err := os.ReadFile(m.Path)
		if err != nil {
			return err
		}
		file := m.Name + ".ko"
		a.File(dir+"/"+file, b, 0o644)
		fmt.Fprintf(&order, "%s\n", file)
	}
	a.File(dir+"/load-order", []byte(order.String()), 0o644)
	return nil
}
