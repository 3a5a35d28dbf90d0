// Package hw is the real chassis: a board.PowerSource, board.FanSource and
// board.TempSource (plus the chassis FRU and the peer module's lines) built
// from a board profile — a JSON file, not code, that maps each device to
// its bus, address and role:
//
//   - PSUs: PMBus over I2C (pmbus: {bus, addr}) or the kernel PMBus
//     driver's hwmon chip (hwmon: {name, device}); optional FRU EEPROM,
//     presence and power-good GPIO lines; rated power.
//   - Fans: a hwmon chip channel (fanN_input, pwmN) or a MAX31785 channel
//     over I2C; optional presence line; for a MAX31785 fan an optional
//     dutyPercent that Open commands (FAN_COMMAND_1) once.
//   - Temperatures: hwmon channels (tmp105, lm75), with the profile's
//     warningC/criticalC as upper caution/critical thresholds.
//   - The chassis FRU EEPROM (sysfs eeprom file or AT24 over I2C).
//   - GPIO lines of the peer CMC module: presence (input) and reset.
//
// A PMBus PSU's STATUS_WORD is logged whenever it changes (warning level
// when it makes the supply Critical): it alone decides the PSU's health.
//
// LoadProfile parses and validates a profile; every error names the field
// ("psus[1].pmbus.addr: ..."). Open builds the Chassis. The sysfs root is
// a profile key (default /sys) and I2C buses and GPIO lines come through
// Options, so tests run on fixture trees under testdata/ with periph's
// i2ctest playbacks and gpiotest pins.
package hw
