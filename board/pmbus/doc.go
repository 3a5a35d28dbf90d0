// Package pmbus talks PMBus (SMBus-based power management) to power supplies
// and fan controllers over I2C, through periph.io's i2c.Bus.
//
// Dev has the PMBus transactions (read/write byte and word, block read,
// PAGE), the LINEAR11 and LINEAR16 (with VOUT_MODE) data formats, and
// STATUS_WORD decoded into named faults. PSU reads a power supply's
// READ_VIN/IIN/VOUT/IOUT/PIN/POUT/TEMPERATURE_1/FAN_SPEED_1 and its
// MFR_ID/MODEL/REVISION/SERIAL strings. MAX31785 reads the fans of a Maxim
// MAX31785 fan controller (one PMBus page per fan).
//
// Every register access is one i2c Tx (write the command code, read the
// data), so tests replay them byte for byte with periph's i2ctest.Playback.
package pmbus
