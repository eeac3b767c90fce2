import Testing
import SegDICOM

@Test func dcmtkVersionIs367() { #expect(DCMTK.version == "3.6.7") }
