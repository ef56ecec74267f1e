//! SOLIS connector: export reader, import writer, ACK reader, and the SOLIS simulator
