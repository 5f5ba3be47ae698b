from twisted.application.service import ServiceMaker

mirrorbits = ServiceMaker(
    "Mirrorbits",
    "mirrorbits.tap",
    "A geographical download redirector (Mirrorbits compatible).",
    "mirrorbits",
)
