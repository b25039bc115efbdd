"""talkinghead: few-shot neural talking-head synthesis (LSR, FSTH, MetaPortrait)."""

__version__ = "0.1.0"
