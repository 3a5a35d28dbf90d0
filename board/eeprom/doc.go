// Package eeprom reads and writes serial EEPROMs of the AT24 family (the
// chips that hold FRU data): either through the Linux at24 driver's sysfs
// `eeprom` file, or directly over I2C with periph.io's i2c.Bus.
//
// Over I2C a read sets the word address (one byte on chips up to 2 Kbit,
// two bytes above) and reads sequentially; a write goes page by page (no
// write may cross a page boundary) and waits out each internal write cycle
// by acknowledge polling, bounded by a timeout.
package eeprom
