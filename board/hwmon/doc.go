// Package hwmon reads Linux hwmon sensors from sysfs: fans (fanN_input in
// RPM, pwmN 0-255), temperatures (tempN_input in millidegrees Celsius, as
// tmp105/lm75 report them), and the kernel PMBus drivers' voltages,
// currents and powers (inN_input mV, currN_input mA, powerN_input µW) with
// their labels (inN_label "vin", "vout1", ...).
//
// The sysfs root is a parameter (default /sys/class/hwmon), so tests run
// on fixture trees under testdata/. A chip is found by its `name` file and,
// when several chips share a name, by its device: the basename of the
// `device` link, e.g. "3-004c" for I2C bus 3, address 0x4c.
package hwmon
