package vip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/vishvananda/netlink"
)

// Config names the address and where it lives.
type Config struct {
	Interface string       // e.g. eth0
	Address   netip.Prefix // e.g. 10.0.0.100/24
	ProbeWait time.Duration
	Announce  int // gratuitous ARP rounds (default 2)
}

// Netlink holds the address on a Linux interface.
type Netlink struct {
	cfg Config
	mu  sync.Mutex
}

// New checks the configuration; the interface must exist.
func New(cfg Config) (*Netlink, error) {
	if !cfg.Address.IsValid() || !cfg.Address.Addr().Is4() {
		return nil, fmt.Errorf("vip: address %q: want an IPv4 prefix such as 10.0.0.100/24", cfg.Address)
	}
	if _, err := net.InterfaceByName(cfg.Interface); err != nil {
		return nil, fmt.Errorf("vip: interface %q: %w", cfg.Interface, err)
	}
	if cfg.ProbeWait == 0 {
		cfg.ProbeWait = 100 * time.Millisecond
	}
	if cfg.Announce == 0 {
		cfg.Announce = 2
	}
	return &Netlink{cfg: cfg}, nil
}

func (v *Netlink) addr() *netlink.Addr {
	p := v.cfg.Address
	return &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}
}

// Probe sends an ARP probe for the address and reports whether another
// host answers (or probes for it too) within ProbeWait.
func (v *Netlink) Probe(ctx context.Context) (bool, error) {
	return v.ProbeWithin(ctx, v.cfg.ProbeWait)
}

// ProbeWithin is Probe with the given wait instead of ProbeWait (the
// takeover uses a short one right after fencing a module proven dead).
func (v *Netlink) ProbeWithin(ctx context.Context, wait time.Duration) (bool, error) {
	ifi, err := net.InterfaceByName(v.cfg.Interface)
	if err != nil {
		return false, err
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		return false, fmt.Errorf("vip: arp on %s: %w", ifi.Name, err)
	}
	defer c.Close()
	target := v.cfg.Address.Addr()
	p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, netip.IPv4Unspecified(), ethernet.Broadcast, target)
	if err != nil {
		return false, err
	}
	deadline := time.Now().Add(wait)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	c.SetReadDeadline(deadline)
	// Two probes, half the wait apart, in case the first is lost.
	if err := c.WriteTo(p, ethernet.Broadcast); err != nil {
		return false, fmt.Errorf("vip: arp probe: %w", err)
	}
	second := time.Now().Add(wait / 2)
	sent2 := false
	for {
		if !sent2 && time.Now().After(second) {
			c.WriteTo(p, ethernet.Broadcast)
			sent2 = true
			c.SetReadDeadline(deadline)
		}
		if !sent2 {
			c.SetReadDeadline(second)
		}
		q, _, err := c.Read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if sent2 || time.Now().After(deadline) {
					return false, nil
				}
				continue
			}
			return false, fmt.Errorf("vip: arp read: %w", err)
		}
		if q.SenderHardwareAddr.String() == ifi.HardwareAddr.String() {
			continue
		}
		switch {
		case q.Operation == arp.OperationReply && q.SenderIP == target:
			return true, nil
		case q.Operation == arp.OperationRequest && q.SenderIP == target: // gratuitous ARP of a holder
			return true, nil
		case q.Operation == arp.OperationRequest && q.TargetIP == target && (!q.SenderIP.IsValid() || q.SenderIP.IsUnspecified()):
			return true, nil // someone else probing for it at the same time
		}
	}
}

// Acquire adds the address and announces it with gratuitous ARP. The first
// announcement is sent before Acquire returns; the repeats (in case one is
// lost) follow in the background, each only while the address is still
// held.
func (v *Netlink) Acquire(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	link, err := netlink.LinkByName(v.cfg.Interface)
	if err != nil {
		return fmt.Errorf("vip: %w", err)
	}
	if err := netlink.AddrAdd(link, v.addr()); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("vip: add %s to %s: %w", v.cfg.Address, v.cfg.Interface, err)
	}
	if err := v.announce(); err != nil {
		return err
	}
	if v.cfg.Announce > 1 {
		go func() {
			for i := 1; i < v.cfg.Announce; i++ {
				time.Sleep(20 * time.Millisecond)
				v.mu.Lock()
				if v.Held() {
					v.announce()
				}
				v.mu.Unlock()
			}
		}()
	}
	return nil
}

// announce sends one round of gratuitous ARP (request and reply). Callers
// hold mu.
func (v *Netlink) announce() error {
	ifi, err := net.InterfaceByName(v.cfg.Interface)
	if err != nil {
		return err
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		return fmt.Errorf("vip: arp on %s: %w", ifi.Name, err)
	}
	defer c.Close()
	ip := v.cfg.Address.Addr()
	for _, op := range []arp.Operation{arp.OperationRequest, arp.OperationReply} {
		p, err := arp.NewPacket(op, ifi.HardwareAddr, ip, ethernet.Broadcast, ip)
		if err != nil {
			return err
		}
		if err := c.WriteTo(p, ethernet.Broadcast); err != nil {
			return fmt.Errorf("vip: gratuitous arp: %w", err)
		}
	}
	return nil
}

// Release removes the address (nothing to do when it is not there).
func (v *Netlink) Release() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	link, err := netlink.LinkByName(v.cfg.Interface)
	if err != nil {
		return fmt.Errorf("vip: %w", err)
	}
	if err := netlink.AddrDel(link, v.addr()); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("vip: remove %s from %s: %w", v.cfg.Address, v.cfg.Interface, err)
	}
	return nil
}

// Held reports whether the interface carries the address (asks the kernel).
func (v *Netlink) Held() bool {
	link, err := netlink.LinkByName(v.cfg.Interface)
	if err != nil {
		return false
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == v.cfg.Address.Addr() {
			return true
		}
	}
	return false
}
