public enum SegHTTPPlaceholder {}
