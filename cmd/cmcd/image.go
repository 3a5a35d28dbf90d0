package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"cmcd/daemon"
	"cmcd/firmware"
	"cmcd/flash"
	"cmcd/internal/durable"
)

const imageUsage = `usage:
  cmcd image keygen  --out PREFIX                   writes PREFIX.key (private, 0600) and PREFIX.pub
  cmcd image build   --payload FILE --version V --board B [--product cmcd] [--build-time RFC3339]
                     [--description TEXT] --out IMAGE   an unsigned image
  cmcd image sign    --key PREFIX.key [--out SIGNED] IMAGE   (in place without --out)
  cmcd image inspect [--trusted-key PUB]... [--board B] [--product P] IMAGE
                     prints the manifest and each check; exit 0 only if every check passed
  cmcd image install --data DIR [--config FILE] [--trusted-key PUB]... [--activate] IMAGE
                     offline install into the inactive slot (cmcd must not be running)
  cmcd image status  --data DIR                     both slots, boot selection, S5 choice (JSON)
  cmcd image activate --data DIR primary|backup     boot that slot at the next start (on trial)
`

func image(args []string) int {
	if len(args) < 1 {
		fmt.Fprint(os.Stderr, imageUsage)
		return 2
	}
	fs := flag.NewFlagSet("cmcd image "+args[0], flag.ContinueOnError)
	var err error
	switch args[0] {
	case "keygen":
		err = imageKeygen(fs, args[1:])
	case "build":
		err = imageBuild(fs, args[1:])
	case "sign":
		err = imageSign(fs, args[1:])
	case "inspect":
		return imageInspect(fs, args[1:])
	case "install":
		err = imageInstall(fs, args[1:])
	case "status":
		err = imageStatus(fs, args[1:])
	case "activate":
		err = imageActivate(fs, args[1:])
	default:
		fmt.Fprintf(os.Stderr, "cmcd image: unknown command %q\n%s", args[0], imageUsage)
		return 2
	}
	var usage usageError
	switch {
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "cmcd image "+args[0]+":", err)
		return 2
	case errors.Is(err, flag.ErrHelp):
		return 2
	case err != nil:
		fmt.Fprintln(os.Stderr, "cmcd image "+args[0]+":", err)
		return 1
	}
	return 0
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func oneArg(fs *flag.FlagSet, what string) (string, error) {
	if fs.NArg() != 1 {
		return "", usageError{"want exactly one " + what}
	}
	return fs.Arg(0), nil
}

func imageKeygen(fs *flag.FlagSet, args []string) error {
	out := fs.String("out", "", "output prefix: PREFIX.key and PREFIX.pub")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return usageError{"--out PREFIX is required"}
	}
	priv, pub, err := firmware.GenerateKey()
	if err != nil {
		return err
	}
	for _, f := range []string{*out + ".key", *out + ".pub"} {
		if _, err := os.Stat(f); err == nil {
			return fmt.Errorf("%s exists; not overwriting a key", f)
		}
	}
	if err := os.WriteFile(*out+".key", priv, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(*out+".pub", pub, 0o644); err != nil {
		return err
	}
	k, _ := firmware.ParsePublicKey(pub)
	fmt.Printf("key %s: private %s.key, public %s.pub\n", firmware.KeyID(k), *out, *out)
	return nil
}

func imageBuild(fs *flag.FlagSet, args []string) error {
	payload := fs.String("payload", "", "payload file")
	out := fs.String("out", "", "image file to write")
	m := firmware.Manifest{}
	fs.StringVar(&m.Product, "product", firmware.Product, "product")
	fs.StringVar(&m.Board, "board", "", "target board (e.g. sim)")
	fs.StringVar(&m.Version, "version", "", "image version")
	fs.StringVar(&m.Description, "description", "", "free text")
	bt := fs.String("build-time", "", "build time, RFC 3339 (default: now; set it for reproducible images)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *payload == "" || *out == "" || m.Version == "" || m.Board == "" {
		return usageError{"--payload, --version, --board and --out are required"}
	}
	m.BuildTime = time.Now().UTC().Truncate(time.Second)
	if *bt != "" {
		t, err := time.Parse(time.RFC3339, *bt)
		if err != nil {
			return usageError{fmt.Sprintf("--build-time %q: want RFC 3339, e.g. 2025-01-02T15:04:05Z", *bt)}
		}
		m.BuildTime = t
	}
	var h *firmware.Header
	err := durable.WriteFunc(*out, 0o644, func(f *os.File) error {
		var err error
		h, err = firmware.Build(f, *payload, m)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("built unsigned image %s: %s %s for board %s, payload %d bytes sha256 %s\n", *out, h.Manifest.Product,
		h.Manifest.Version, h.Manifest.Board, h.Manifest.PayloadSize, h.Manifest.PayloadSHA256)
	return nil
}

func imageSign(fs *flag.FlagSet, args []string) error {
	keyFile := fs.String("key", "", "private key (PEM PKCS#8 ed25519)")
	out := fs.String("out", "", "signed image (default: sign in place)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	in, err := oneArg(fs, "IMAGE")
	if err != nil {
		return err
	}
	if *keyFile == "" {
		return usageError{"--key FILE is required"}
	}
	kb, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	priv, err := firmware.ParsePrivateKey(kb)
	if err != nil {
		return fmt.Errorf("%s: %w", *keyFile, err)
	}
	if *out == "" {
		*out = in
	}
	src, err := os.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	var h *firmware.Header
	err = durable.WriteFunc(*out, 0o644, func(f *os.File) error {
		var err error
		h, err = firmware.Sign(f, src, priv)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("signed %s %s with key %s -> %s\n", h.Manifest.Product, h.Manifest.Version, firmware.KeyID(h.Signatures[len(h.Signatures)-1].PublicKey), *out)
	return nil
}

func status(err error) string {
	if err == nil {
		return "ok"
	}
	return "FAILED: " + err.Error()
}

func imageInspect(fs *flag.FlagSet, args []string) int {
	var keys multi
	fs.Var(&keys, "trusted-key", "trusted public key file; repeatable")
	board := fs.String("board", "", "check the target board")
	product := fs.String("product", "", "check the product")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	in, err := oneArg(fs, "IMAGE")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cmcd image inspect:", err)
		return 2
	}
	ring, err := firmware.LoadKeyRing(keys, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cmcd image inspect:", err)
		return 2
	}
	f, err := os.Open(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cmcd image inspect:", err)
		return 1
	}
	defer f.Close()
	rep := firmware.Inspect(f, ring, *product, *board)
	if rep.Err != nil {
		fmt.Printf("image:     %s\nheader:    %s\n", in, status(rep.Err))
		return 1
	}
	m := rep.Header.Manifest
	fmt.Printf("image:       %s (%d bytes: %d header + %d payload)\n", in, rep.Header.Size(), rep.Header.Len(), m.PayloadSize)
	fmt.Printf("product:     %s\nboard:       %s\nversion:     %s\nbuild time:  %s\npayload:     %d bytes, sha256 %s\n",
		m.Product, m.Board, m.Version, m.BuildTime.Format(time.RFC3339), m.PayloadSize, m.PayloadSHA256)
	if m.Description != "" {
		fmt.Printf("description: %s\n", m.Description)
	}
	if len(rep.Signatures) == 0 {
		fmt.Println("signatures:  none")
	}
	for _, s := range rep.Signatures {
		fmt.Printf("signature:   key %s trusted=%v valid=%v\n", s.KeyID, s.Trusted, s.Valid)
	}
	fmt.Printf("check signature: %s\ncheck target:    %s\ncheck payload:   %s\n", status(rep.Signature), status(rep.Target), status(rep.Payload))
	if !rep.OK() {
		return 1
	}
	return 0
}

// firmwareFlags loads --data/--config/--trusted-key/--board into options.
func firmwareFlags(fs *flag.FlagSet) func() (firmware.Options, error) {
	data := fs.String("data", "", "data directory")
	config := fs.String("config", "", "cmcd config file (JSON; its firmware section)")
	board := fs.String("board", "", "board (default: the config's, else sim)")
	var keys multi
	fs.Var(&keys, "trusted-key", "trusted public key file; repeatable")
	return func() (firmware.Options, error) {
		c := daemon.Defaults()
		if *config != "" {
			if err := c.LoadFile(*config); err != nil {
				return firmware.Options{}, err
			}
		}
		if *data != "" {
			c.Data = *data
		}
		if *data == "" && *config == "" {
			return firmware.Options{}, usageError{"--data DIR is required"}
		}
		if *board != "" {
			c.Board = *board
		}
		c.Firmware.TrustedKeyFiles = append(c.Firmware.TrustedKeyFiles, keys...)
		return daemon.FirmwareOptions(c, nil)
	}
}

func openService(fs *flag.FlagSet, args []string, load func() (firmware.Options, error)) (*firmware.Service, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o, err := load()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Areas.Root, 0o700); err != nil {
		return nil, err
	}
	return firmware.Open(o)
}

func imageInstall(fs *flag.FlagSet, args []string) error {
	load := firmwareFlags(fs)
	activate := fs.Bool("activate", false, "activate the image after installing it")
	svc, err := openService(fs, args, load)
	if err != nil {
		return err
	}
	defer svc.Close()
	in, err := oneArg(fs, "IMAGE")
	if err != nil {
		return err
	}
	res, err := svc.InstallFile(context.Background(), in, func(p firmware.Progress) {
		fmt.Fprintf(os.Stderr, "install: %s %d/%d (%d%%)\n", p.Phase, p.Done, p.Total, p.Overall)
	})
	if err != nil {
		return err
	}
	fmt.Printf("installed %s %s into the %s slot (pending, %s)\n", res.Image.Product, res.Image.Version, res.Slot, res.Elapsed.Round(time.Millisecond))
	if *activate {
		if err := svc.Activate(res.Slot); err != nil {
			return err
		}
		fmt.Printf("activated: the %s slot boots at the next start, on trial (%d boots to report healthy)\n", res.Slot, svc.BootLimit())
	}
	return nil
}

func imageStatus(fs *flag.FlagSet, args []string) error {
	svc, err := openService(fs, args, firmwareFlags(fs))
	if err != nil {
		return err
	}
	defer svc.Close()
	st := svc.State()
	out := map[string]any{"running": svc.Running(), "slots": svc.Inventory(), "nextBoot": st.NextBoot, "trial": st.Trial,
		"boots": st.Boots, "dataChoice": st.DataChoice}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(b))
	return nil
}

func imageActivate(fs *flag.FlagSet, args []string) error {
	svc, err := openService(fs, args, firmwareFlags(fs))
	if err != nil {
		return err
	}
	defer svc.Close()
	name, err := oneArg(fs, "slot (primary or backup)")
	if err != nil {
		return err
	}
	slot, err := flash.ParseSlot(strings.TrimSpace(name))
	if err != nil {
		return usageError{err.Error()}
	}
	if err := svc.Activate(slot); err != nil {
		return err
	}
	fmt.Printf("the %s slot boots at the next start\n", slot)
	return nil
}
