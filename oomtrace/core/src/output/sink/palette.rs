//! The styles of the terminal sinks (`text`, `tail`), one palette so a
//! verdict reads in the same colour wherever it is printed.

use anstyle::AnsiColor;
pub use anstyle::Style;

pub const DIM: Style = Style::new().dimmed();
pub const BOLD: Style = Style::new().bold();
const fn bold(color: AnsiColor) -> Style {
    Style::new()
        .bold()
        .fg_color(Some(anstyle::Color::Ansi(color)))
}
pub const RED: Style = bold(AnsiColor::Red);
pub const YELLOW: Style = bold(AnsiColor::Yellow);
pub const MAGENTA: Style = bold(AnsiColor::Magenta);
pub const CYAN: Style = bold(AnsiColor::Cyan);
pub const GREEN: Style = bold(AnsiColor::Green);

/// `s` in `style`, always: the sinks' `AutoStream` strips the escapes when
/// colour is off.
pub fn paint(style: Style, s: &str) -> String {
    format!("{style}{s}{style:#}")
}
