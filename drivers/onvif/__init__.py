"""ONVIF network cameras: finding them (discovery), asking them for their streams (camera).

Errors (all raised by `drivers.onvif.camera`, each also a builtin):

    OnvifError
     +-- CameraUnreachable (ConnectionError)   no answer, refused connection, timeout
     +-- WrongCredentials (PermissionError)    the camera answered and refused the account
     +-- NotOnvif (ValueError)                 something answered, but not an ONVIF device service
          +-- ResponseTooLarge                 an answer over MAX_RESPONSE_BYTES
"""
