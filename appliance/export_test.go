package appliance

// AppendJSONStringForTest exposes appendJSONString to the external tests.
var AppendJSONStringForTest = appendJSONString
