// Package gpio gives the chassis' GPIO lines their meaning: presence
// detects of PSUs and fans, power-good inputs, and the peer CMC module's
// presence input and reset output. A Line wraps a periph.io gpio pin with
// its polarity (most presence and reset lines are active low), so callers
// ask "is it asserted?" rather than "is it high?".
//
// Lines are found by name (the device tree's gpio-line-names) through the
// periph.io registry, which host/v3's gpioioctl driver fills from
// /dev/gpiochip*; tests hand in gpiotest pins instead.
package gpio
