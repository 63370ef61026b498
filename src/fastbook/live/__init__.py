"""fastbook.live: the live half (websocket and REST drivers over the venue codecs)."""
