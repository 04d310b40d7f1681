"""The study: run recipes (``study`` params), stage flow and sharing (:mod:`.flow`), the training
data each stage assembles (:mod:`.sources`) and stage 3's iterations (:mod:`.selftrain`)."""
