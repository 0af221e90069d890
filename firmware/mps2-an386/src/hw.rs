//! Everything that touches the machine: the CMSDK APB UART0 of QEMU's `mps2-an386` (MMIO),
//! the SysTick millisecond counter, and ARM semihosting (`bkpt 0xab`). Every `unsafe` block
//! of the firmware is in this module.

use core::fmt::{self, Write as _};
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU32, Ordering};

use corowire::Instant;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;

/// UART0's registers (ARM's "Cortex-M System Design Kit" APB UART, as QEMU's `cmsdk-apb-uart`).
const UART0: usize = 0x4000_4000;
const DATA: usize = UART0;
const STATE: usize = UART0 + 0x4;
const CTRL: usize = UART0 + 0x8;
const BAUDDIV: usize = UART0 + 0x10;
/// `STATE`: the transmit holding register is full.
const STATE_TX_FULL: u32 = 1 << 0;
/// `STATE`: a received byte waits in `DATA`.
const STATE_RX_FULL: u32 = 1 << 1;
/// `CTRL`: transmitter and receiver enabled, no interrupts.
const CTRL_TX_RX: u32 = 0b11;
/// The smallest divider the CMSDK UART accepts (QEMU logs a guest error below it); the
/// rate means nothing on a socket chardev.
const BAUDDIV_MIN: u32 = 16;

fn reg_read(addr: usize) -> u32 {
    // SAFETY: `addr` is one of UART0's 32-bit registers above, always mapped on mps2-an386;
    // reading it has no effect beyond the UART's own (a DATA read takes the received byte).
    unsafe { read_volatile(addr as *const u32) }
}

fn reg_write(addr: usize, value: u32) {
    // SAFETY: as `reg_read`; the UART's registers are device memory, not memory Rust owns.
    unsafe { write_volatile(addr as *mut u32, value) }
}

/// UART0 as a blocking byte stream. A read that waits longer than the idle limit without a
/// byte fails with [`embedded_io::ErrorKind::TimedOut`], so even the link's setup (which has
/// no deadline of its own) is bounded.
pub(crate) struct Uart {
    idle_limit_ms: u32,
}

impl Uart {
    /// Enables UART0's transmitter and receiver; reads give up after `idle_limit_ms` of silence.
    pub(crate) fn new(idle_limit_ms: u32) -> Self {
        reg_write(BAUDDIV, BAUDDIV_MIN);
        reg_write(CTRL, CTRL_TX_RX);
        Self { idle_limit_ms }
    }

    fn rx_ready() -> bool {
        reg_read(STATE) & STATE_RX_FULL != 0
    }
}

/// A read found no byte within the UART's idle limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdleTimeout;

impl fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no byte on UART0 within the idle limit")
    }
}

impl core::error::Error for IdleTimeout {}

impl embedded_io::Error for IdleTimeout {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::TimedOut
    }
}

impl embedded_io::ErrorType for Uart {
    type Error = IdleTimeout;
}

impl embedded_io::Read for Uart {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, IdleTimeout> {
        if buf.is_empty() {
            return Ok(0);
        }
        let start = millis();
        while !Self::rx_ready() {
            if millis().wrapping_sub(start) > self.idle_limit_ms {
                return Err(IdleTimeout);
            }
        }
        let mut n = 0;
        while n < buf.len() && Self::rx_ready() {
            // DATA's low byte is the received byte.
            buf[n] = reg_read(DATA).to_le_bytes()[0];
            n += 1;
        }
        Ok(n)
    }
}

impl embedded_io::ReadReady for Uart {
    fn read_ready(&mut self) -> Result<bool, IdleTimeout> {
        Ok(Self::rx_ready())
    }
}

impl embedded_io::Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, IdleTimeout> {
        for &b in buf {
            while reg_read(STATE) & STATE_TX_FULL != 0 {}
            reg_write(DATA, u32::from(b));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), IdleTimeout> {
        while reg_read(STATE) & STATE_TX_FULL != 0 {}
        Ok(())
    }
}

/// Milliseconds since [`start_systick`], counted by the SysTick exception.
static TICKS_MS: AtomicU32 = AtomicU32::new(0);

/// The SysTick clock of `mps2-an386`'s Cortex-M4 (QEMU's `SYSCLK`, 25 MHz).
const CORE_HZ: u32 = 25_000_000;

/// Starts SysTick with a 1 ms period and its exception. The period is also what keeps QEMU 7.2's
/// UART prompt: its main loop, which polls the chardev, wakes on the timer.
pub(crate) fn start_systick(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_HZ / 1000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[exception]
fn SysTick() {
    TICKS_MS.fetch_add(1, Ordering::Relaxed);
}

fn millis() -> u32 {
    TICKS_MS.load(Ordering::Relaxed)
}

/// The link's [`corowire_embedded::Clock`]: SysTick's milliseconds.
pub(crate) fn now() -> Instant {
    Instant::from_millis(u64::from(millis()))
}

/// Semihosting operations (ARM "Semihosting for AArch32 and AArch64", v2).
const SYS_WRITE0: u32 = 0x04;
const SYS_EXIT_EXTENDED: u32 = 0x20;
/// `ADP_Stopped_ApplicationExit`: the exit's subcode is the status.
const ADP_STOPPED_APPLICATION_EXIT: u32 = 0x2_0026;

fn semihosting(op: u32, arg: usize) {
    // SAFETY: `bkpt 0xab` is the semihosting call QEMU serves (`-semihosting-config
    // enable=on`); `arg` points to memory that outlives the call and holds what `op` reads
    // (a NUL-terminated string, a two-word parameter block); r0 comes back with the result,
    // which these operations do not need.
    unsafe {
        core::arch::asm!("bkpt #0xab", inout("r0") op => _, in("r1") arg, options(nostack));
    }
}

/// One report line, at most `LINE` bytes (longer ones are cut), written with SYS_WRITE0.
const LINE: usize = 160;

struct LineBuf {
    buf: [u8; LINE + 2],
    len: usize,
}

impl fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(LINE - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes `corowire-firmware: <args>\n` to the semihosting console (QEMU's stderr).
pub(crate) fn report(args: fmt::Arguments<'_>) {
    let mut line = LineBuf { buf: [0; LINE + 2], len: 0 };
    // LineBuf never fails; a `Display` that fails leaves its line cut short.
    let _ = line.write_fmt(format_args!("corowire-firmware: {args}"));
    line.buf[line.len] = b'\n';
    line.buf[line.len + 1] = 0;
    semihosting(SYS_WRITE0, line.buf.as_ptr() as usize);
}

/// Ends the QEMU process with `status` (SYS_EXIT_EXTENDED, so any status, not only 0 and 1).
pub(crate) fn exit(status: u32) -> ! {
    let block = [ADP_STOPPED_APPLICATION_EXIT, status];
    semihosting(SYS_EXIT_EXTENDED, block.as_ptr() as usize);
    // Without a semihosting host the call returns: stay here.
    loop {
        cortex_m::asm::wfi();
    }
}
