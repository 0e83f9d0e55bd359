public enum CkStub {}
