public enum SegDICOMwebPlaceholder {}
