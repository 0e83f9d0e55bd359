public enum DataStub {}
