//! Departmental secure box connector: CSV/XLSX over a drop folder or SFTP, and its simulator
