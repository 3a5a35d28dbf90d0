package ipmi

import (
	"context"
	"errors"
	"fmt"

	"github.com/bougou/go-ipmi/pkg/command/chassis"

	"cmcd/board"
)

// Node reads the node's power state (Get Chassis Status) and sensors (SDR
// repository + Get Sensor Reading), and derives its health and summary
// readings. An unreachable node yields a Node with Reachable false, Health
// Warning (its state is unknown, not known to be failing) and an error
// wrapping board.ErrUnreachable.
func (s *Source) Node(ctx context.Context, slot int) (board.Node, error) {
	var out board.Node
	err := s.do(ctx, slot, func(ctx context.Context, n *node) error {
		st := &chassis.GetChassisStatusResponse{}
		if err := n.call(ctx, &chassis.GetChassisStatusRequest{}, st); err != nil {
			return fmt.Errorf("reading chassis status: %w", err)
		}
		snap, err := n.readSensors(ctx)
		if err != nil {
			return err
		}
		out = n.base()
		out.Reachable = true
		out.Power = board.PowerOff
		if st.PowerIsOn {
			out.Power = board.PowerOn
		}
		sev := board.SeverityOK
		if st.PowerFault || st.PowerControlFault || st.PowerOverload {
			sev = worse(sev, board.SeverityCritical)
		}
		if st.CollingFanFault || st.DriveFault {
			sev = worse(sev, board.SeverityWarning)
		}
		out.Sensors = make([]board.Sensor, 0, len(snap.readings))
		for _, rd := range snap.readings {
			out.Sensors = append(out.Sensors, rd.toBoard())
			sev = worse(sev, rd.sev)
		}
		out.Health = healthOf(sev)
		pick(&out, snap.readings)
		return nil
	})
	if err != nil {
		if n, nerr := s.node(slot); nerr == nil && errors.Is(err, board.ErrUnreachable) {
			out = n.base()
			out.Reachable = false
			out.Health = board.HealthWarning
		}
		return out, err
	}
	return out, nil
}

// base is the part of board.Node known without asking the BMC.
func (n *node) base() board.Node {
	return board.Node{Slot: n.cfg.Slot, Name: n.cfg.Name, Present: true, BMC: n.cfg.Addr()}
}

// SEL returns the node's whole current SEL, oldest first. Only entries
// added since the previous call are read from the BMC (see refreshSEL).
func (s *Source) SEL(ctx context.Context, slot int) ([]board.SELEntry, error) {
	var out []board.SELEntry
	err := s.do(ctx, slot, func(ctx context.Context, n *node) error {
		entries, err := n.refreshSEL(ctx)
		if err != nil {
			return err
		}
		out = append(make([]board.SELEntry, 0, len(entries)), entries...)
		return nil
	})
	return out, err
}

// ClearSEL erases the node's SEL (Reserve SEL + Clear SEL). The node's
// fault history is kept; ClearFaults clears that.
func (s *Source) ClearSEL(ctx context.Context, slot int) error {
	return s.do(ctx, slot, func(ctx context.Context, n *node) error {
		// Faults from entries not yet read would be lost with them.
		if entries, err := n.refreshSEL(ctx); err == nil {
			n.faults.addSEL(entries, n.sdr)
		}
		return n.clearSEL(ctx)
	})
}

// Faults returns the node's fault history, oldest first: faults raised by
// warning and critical SEL events (closed by their deassertion) and by
// sensors now in a warning or critical state (closed when the state
// clears). Sensor readings of a Node call younger than the sensor max age
// are reused.
func (s *Source) Faults(ctx context.Context, slot int) ([]board.Fault, error) {
	var out []board.Fault
	err := s.do(ctx, slot, func(ctx context.Context, n *node) error {
		entries, err := n.refreshSEL(ctx)
		if err != nil {
			return err
		}
		snap := n.sensors
		if snap == nil || s.clock.Now().Sub(snap.at) > s.sensorMaxAge {
			if snap, err = n.readSensors(ctx); err != nil {
				return err
			}
		}
		n.faults.addSEL(entries, n.sdr)
		n.faults.addSensors(snap, s.clock.Now())
		out = n.faults.snapshot()
		return nil
	})
	return out, err
}

// ClearFaults clears the node's fault history. SEL entries already seen
// do not raise faults again; conditions still present (a sensor still
// beyond its threshold) are raised again by the next Faults call.
func (s *Source) ClearFaults(ctx context.Context, slot int) error {
	n, err := s.node(slot)
	if err != nil {
		return err
	}
	err = s.do(ctx, slot, func(ctx context.Context, n *node) error {
		// Mark what the SEL holds now as seen, so it is cleared too.
		entries, err := n.refreshSEL(ctx)
		if err != nil {
			return err
		}
		n.faults.addSEL(entries, n.sdr)
		n.faults.clear()
		return nil
	})
	if errors.Is(err, board.ErrUnreachable) {
		// Clearing our own history needs no BMC.
		select {
		case n.io <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		n.faults.clear()
		<-n.io
		return nil
	}
	return err
}

// FRU reads the node's FRU device 0: chassis, board and product areas.
func (s *Source) FRU(ctx context.Context, slot int) (board.FRU, error) {
	var out board.FRU
	err := s.do(ctx, slot, func(ctx context.Context, n *node) error {
		data, err := n.readFRUData(ctx, 0)
		if err != nil {
			return err
		}
		out, err = parseFRU(data)
		return err
	})
	return out, err
}

// SetPower powers the node on, off (immediately, like ForceOff) or cycles
// it, with Chassis Control.
func (s *Source) SetPower(ctx context.Context, slot int, action board.PowerAction) error {
	var ctl chassis.ChassisControl
	switch action {
	case board.ActionOn:
		ctl = chassis.ChassisControlPowerUp
	case board.ActionOff:
		ctl = chassis.ChassisControlPowerDown
	case board.ActionCycle:
		ctl = chassis.ChassisControlPowerCycle
	case board.ActionSoft:
		ctl = chassis.ChassisControlSoftShutdown
	default:
		return fmt.Errorf("node %d: power action %q not supported (use %s, %s, %s or %s)",
			slot, action, board.ActionOn, board.ActionOff, board.ActionCycle, board.ActionSoft)
	}
	// A power cycle must not be sent twice; on and off may.
	do := s.do
	if action == board.ActionCycle {
		do = s.doOnce
	}
	return do(ctx, slot, func(ctx context.Context, n *node) error {
		if err := n.call(ctx, &chassis.ChassisControlRequest{ChassisControl: ctl}, &chassis.ChassisControlResponse{}); err != nil {
			return fmt.Errorf("chassis control %s: %w", action, err)
		}
		n.log.Info("node power action", "action", string(action))
		return nil
	})
}
